"""Make the pictures that the README and GitHub show, with the project's own commands.

    python readme/make_pictures.py [--only result video notebook]

- ``readme/result.png``: ``demo_image.py`` on ``sample_images/ski.jpg`` with MobileNet-thin.
- ``readme/video_strip.jpg``: ``demo_camera.py --video ../shared/data/videos/sample2.mp4``, then
  evenly spaced frames of its annotated video in a grid.
- ``demo.ipynb``'s outputs: the notebook executed in place (TensorFlow's start-up log lines on
  stderr are left out of the saved outputs).

Run from anywhere; paths are relative to the repository root.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import nbformat
import numpy as np
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
# Relative to the repository root, where the scripts run.
VIDEO = "../shared/data/videos/sample2.mp4"
WEIGHTS = "model/keras/mobilenet_thin.weights.h5"
STEPS = ("result", "video", "notebook")


def run(*args: str) -> None:
    """Run a repository script with this Python, from the repository root."""
    print("$ python", " ".join(args), flush=True)
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True)


def make_result(output: Path) -> None:
    run("demo_image.py", "--image", "sample_images/ski.jpg", "--model", WEIGHTS,
        "--output", str(output.relative_to(ROOT)))


def make_video_strip(output: Path, frames: int = 4, columns: int = 2, width: int = 960) -> None:
    """``frames`` evenly spaced frames of the annotated video, ``columns`` per row, the grid
    ``width`` pixels wide."""
    with tempfile.TemporaryDirectory() as folder:
        annotated = Path(folder) / "annotated.mp4"
        run("demo_camera.py", "--video", VIDEO, "--no-display", "--model", WEIGHTS,
            "--output", str(annotated))
        capture = cv2.VideoCapture(str(annotated))
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        images = []
        for index in np.linspace(0, count - 1, frames + 2).round().astype(int)[1:-1]:
            capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
            ok, image = capture.read()
            if not ok:
                sys.exit(f"error: cannot read frame {index} of {annotated}")
            images.append(image)
        capture.release()
    tile_w = width // columns
    tile_h = round(images[0].shape[0] * tile_w / images[0].shape[1])
    tiles = [cv2.resize(image, (tile_w, tile_h), interpolation=cv2.INTER_AREA)
             for image in images]
    rows = [np.hstack(tiles[r : r + columns]) for r in range(0, len(tiles), columns)]
    cv2.imwrite(str(output), np.vstack(rows), [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {output.relative_to(ROOT)}")


def execute_notebook(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if o.get("name") != "stderr"]
    nbformat.write(notebook, path)
    print(f"executed {path.relative_to(ROOT)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=STEPS, default=STEPS,
                        help="which pictures to make (default: all)")
    args = parser.parse_args(argv)
    for path in (WEIGHTS, VIDEO):
        if not (ROOT / path).is_file():
            sys.exit(f"error: {ROOT / path} not found")
    if "result" in args.only:
        make_result(ROOT / "readme" / "result.png")
    if "video" in args.only:
        make_video_strip(ROOT / "readme" / "video_strip.jpg")
    if "notebook" in args.only:
        execute_notebook(ROOT / "demo.ipynb")


if __name__ == "__main__":
    main()
