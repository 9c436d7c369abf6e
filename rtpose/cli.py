"""The ``rtpose`` command: ``rtpose SUBCOMMAND [flags]`` runs a tool's ``main(argv)``.

    rtpose image --image sample_images/ski.jpg     # = python demo_image.py --image ...
    rtpose models                                  # what the store holds and can fetch
    rtpose --version

``COMMANDS`` maps each subcommand to the module whose ``main(argv)`` it runs, the same as the
top-level script's; a subcommand is listed only when its module is present.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

from rtpose import __version__

COMMANDS: dict[str, str] = {
    "image": "rtpose.tools.demo_image",
    "video": "rtpose.tools.demo_camera",
    "extract": "rtpose.tools.extract_poses",
    "eval": "rtpose.tools.evaluate_coco",
    "export": "rtpose.tools.export",
    "train": "rtpose.tools.train_pose",
    "serve-data": "rtpose.tools.dataset_server",
    "check-data": "rtpose.tools.ds_generator_client",
    "masks": "rtpose.tools.generate_masks",
    "hdf5": "rtpose.tools.generate_hdf5",
    "models": "rtpose.tools.models",
    "fetch": "rtpose.tools.fetch",
    "convert-caffe": "rtpose.tools.caffe_to_keras",
    "dump-caffe": "rtpose.tools.dump_caffe_layers",
    "convert-tf-pose": "rtpose.tools.convert_tf_pose",
    "convert-pth": "rtpose.tools.get_cmu_model",
    "serve": "rtpose.tools.serve",
    "controlnet": "rtpose.tools.controlnet",
}
# Optional packages -> the extra of pyproject.toml that installs them.
EXTRAS: dict[str, str] = {
    "tensorflow": "tensorflow", "tf2onnx": "export", "onnxruntime": "export",
    "pycocotools": "eval", "matplotlib": "train", "zmq": "train", "tensorboard": "train",
    "jax": "jax", "torch": "torch", "ray": "ray", "fsspec": "ray", "nncf": "openvino",
}


def available(module: str) -> bool:
    """Whether ``module`` is present (found, not imported)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _summary(module: str) -> str:
    """The first line of the module's docstring, read without importing it."""
    import ast

    spec = importlib.util.find_spec(module)
    source = spec.loader.get_source(module) if spec and spec.loader else None
    docstring = ast.get_docstring(ast.parse(source)) if source else None
    line = docstring.strip().splitlines()[0].removeprefix("Command line: ") if docstring else ""
    return line[:1].upper() + line[1:]


def usage() -> str:
    lines = ["usage: rtpose [--version] COMMAND [flags]  (rtpose COMMAND --help)", "",
             "commands:"]
    for name, module in COMMANDS.items():
        if available(module):
            lines.append(f"  {name:<16}{_summary(module)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return
    if argv[0] == "--version":
        print(f"rtpose {__version__}")
        return
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        sys.exit(f"error: unknown command {name!r}; `rtpose --help` lists them")
    if not available(COMMANDS[name]):
        sys.exit(f"error: `rtpose {name}` is not part of this installation "
                 f"({COMMANDS[name]} is missing)")
    program = sys.argv[0]
    sys.argv[0] = f"rtpose {name}"  # argparse's usage line names the subcommand
    try:
        importlib.import_module(COMMANDS[name]).main(rest)
    except ModuleNotFoundError as e:
        package = (e.name or "").split(".")[0]
        if package not in EXTRAS:
            raise
        sys.exit(f"error: `rtpose {name}` needs {package}: pip install 'rtpose[{EXTRAS[package]}]'")
    finally:
        sys.argv[0] = program


if __name__ == "__main__":
    main()
