"""Make the pictures that the README and the documentation show, with the project's own code.

    python docs/make_pictures.py [--only result video tracking losses skeleton notebook]

- ``docs/images/result.png``: ``demo_image.py`` on ``sample_images/ski.jpg`` with MobileNet-thin.
- ``docs/images/video_strip.jpg``: ``demo_camera.py --video ../shared/data/videos/sample2.mp4``,
  then evenly spaced frames of its annotated video in a grid.
- ``docs/images/tracking.jpg``: a frame of that annotated video, with the person IDs it draws.
- ``docs/images/losses.png``: a short fine-tuning of MobileNet-thin on coco_mini with the training
  scripts (masks, HDF5, a training and a validation server, ``train_pose.py``), its loss curve.
- ``docs/images/skeleton.png``: the 18 parts and 19 limbs of ``rtpose.skeleton`` on a standing
  figure, each part with its index and name, each limb with its index and PAF channels (x, y),
  in the colours ``demo_image.py`` draws them; grey: the 2 redundant limbs (shoulder - ear) that
  grouping uses and drawing leaves out (no model needed).
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
import numpy as np

from rtpose.skeleton import COLORS, DECODE_ORDER, LIMBS, NUM_TREE_LIMBS, PAF_CHANNELS, PARTS

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
# Relative to the repository root, where the scripts run.
VIDEO = "../shared/data/videos/sample2.mp4"
COCO_MINI = "../shared/data/coco_mini"
WEIGHTS = "model/keras/mobilenet_thin.weights.h5"
STEPS = ("result", "video", "tracking", "losses", "skeleton", "notebook")
NEEDS_WEIGHTS = {"result", "video", "tracking", "losses", "notebook"}
# A standing figure facing the viewer (its right on the picture's left), x, y in PARTS order.
FIGURE = ((450, 240), (450, 380), (320, 390), (270, 540), (240, 690), (580, 390), (630, 540),
          (660, 690), (385, 690), (370, 860), (360, 1020), (515, 690), (530, 860), (540, 1020),
          (390, 160), (510, 160), (280, 210), (620, 210))


def run(*args: str) -> None:
    """Run a repository script with this Python, from the repository root."""
    print("$ python", " ".join(args), flush=True)
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True)


def make_result(output: Path) -> None:
    run("demo_image.py", "--image", "sample_images/ski.jpg", "--model", WEIGHTS,
        "--output", str(output.relative_to(ROOT)))


def annotated_frames(positions: np.ndarray) -> list[np.ndarray]:
    """Frames of ``demo_camera.py``'s annotated video of ``VIDEO``, at ``positions`` (fractions
    of its length)."""
    with tempfile.TemporaryDirectory() as folder:
        annotated = Path(folder) / "annotated.mp4"
        run("demo_camera.py", "--video", VIDEO, "--no-display", "--model", WEIGHTS,
            "--output", str(annotated))
        capture = cv2.VideoCapture(str(annotated))
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        images = []
        for index in (np.asarray(positions) * (count - 1)).round().astype(int):
            capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
            ok, image = capture.read()
            if not ok:
                sys.exit(f"error: cannot read frame {index} of {annotated}")
            images.append(image)
        capture.release()
    return images


def make_video_strip(output: Path, frames: int = 4, columns: int = 2, width: int = 960) -> None:
    """``frames`` evenly spaced frames of the annotated video, ``columns`` per row, the grid
    ``width`` pixels wide."""
    images = annotated_frames(np.linspace(0, 1, frames + 2)[1:-1])
    tile_w = width // columns
    tile_h = round(images[0].shape[0] * tile_w / images[0].shape[1])
    tiles = [cv2.resize(image, (tile_w, tile_h), interpolation=cv2.INTER_AREA)
             for image in images]
    rows = [np.hstack(tiles[r : r + columns]) for r in range(0, len(tiles), columns)]
    cv2.imwrite(str(output), np.vstack(rows), [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {output.relative_to(ROOT)}")


def make_tracking_frame(output: Path, position: float = 0.6) -> None:
    """One frame of the annotated video, with its person IDs."""
    (image,) = annotated_frames(np.array([position]))
    cv2.imwrite(str(output), image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {output}")


def make_loss_curve(output: Path, crop: int = 184, epochs: int = 10) -> None:
    """Fine-tune MobileNet-thin on coco_mini (24 training, 30 fixed validation samples) for
    ``epochs`` epochs of 20 batches of 5, as a user would from the README, and keep the curve."""
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        splits = []
        for mode in ("train", "val"):
            masks = str(work / f"{mode}mask2017")
            run("training/generate_masks.py", "--mode", mode, "--dataset-dir", COCO_MINI,
                "--masks-dir", masks)
            splits += ["--split", f"{COCO_MINI}/annotations/person_keypoints_{mode}2017.json",
                       f"{COCO_MINI}/{mode}2017", masks]
        run("training/generate_hdf5.py", *splits, "--val-size", "30", "--output-dir", folder)
        servers = [subprocess.Popen(
            [sys.executable, "training/dataset_server.py", str(work / f"{name}_dataset.h5"),
             port, "--crop-size", str(crop), "--quiet", *flags], cwd=ROOT)
            for name, port, flags in (("train", "5555", ()), ("val", "5556", ("--no-augment",)))]
        try:
            run("training/train_pose.py", "--arch", "mobilenet_thin", "--init-weights", WEIGHTS,
                "--crop-size", str(crop), "--batch-size", "5", "--steps-per-epoch", "20",
                "--val-steps", "6", "--epochs", str(epochs), "--base-lr", "1e-8",
                "--weights-dir", str(work / "weights"), "--logs-dir", str(work / "logs"))
        finally:
            for server in servers:
                server.terminate()
                server.wait()
        output.write_bytes((work / "weights" / "losses.png").read_bytes())
    print(f"wrote {output.relative_to(ROOT)}")


def make_skeleton(output: Path, size: tuple[int, int] = (900, 1130)) -> None:
    """The skeleton's parts and limbs on ``FIGURE``, on a white ``size`` (width, height) canvas."""
    canvas = np.full((size[1], size[0], 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    colour_of_limb = {limb: COLORS[position] if position < NUM_TREE_LIMBS else (190, 190, 190)
                      for position, limb in enumerate(DECODE_ORDER)}
    for limb, (a, b) in enumerate(LIMBS):
        cv2.line(canvas, FIGURE[a], FIGURE[b], colour_of_limb[limb], 6, cv2.LINE_AA)
    for limb, (a, b) in enumerate(LIMBS):
        x, y = (np.add(FIGURE[a], FIGURE[b]) // 2).tolist()
        label = f"L{limb} {PAF_CHANNELS[limb][0]},{PAF_CHANNELS[limb][1]}"
        width = cv2.getTextSize(label, font, 0.45, 1)[0][0]
        (xa, ya), (xb, yb) = FIGURE[a], FIGURE[b]
        if abs(xb - xa) > abs(yb - ya):  # more across than down: above the middle
            origin = (x - width // 2, y - 14)
        else:  # beside it, away from the body's axis
            origin = (x + 8, y + 16) if x >= 450 else (x - 8 - width, y + 16)
        cv2.putText(canvas, label, origin, font, 0.45, (80, 80, 80), 1, cv2.LINE_AA)
    for part, (x, y) in enumerate(FIGURE):
        cv2.circle(canvas, (x, y), 9, COLORS[part], -1, cv2.LINE_AA)
        cv2.circle(canvas, (x, y), 9, (0, 0, 0), 1, cv2.LINE_AA)
        text = f"{part} {PARTS[part]}"
        width = cv2.getTextSize(text, font, 0.5, 1)[0][0]
        if part == PARTS.index("neck"):  # below the shoulders' line, left of the body's axis
            origin = (x - 14 - width, y + 30)
        else:
            origin = (x + 14, y - 10) if x >= 450 else (x - 14 - width, y - 10)
        cv2.putText(canvas, text, origin, font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    for row, text in enumerate(("part: index name;  limb: L index, its PAF channels x,y",
                                "grey: limbs used in grouping, not drawn")):
        cv2.putText(canvas, text, (20, size[1] - 45 + 25 * row), font, 0.6, (0, 0, 0), 1,
                    cv2.LINE_AA)
    cv2.imwrite(str(output), canvas)
    print(f"wrote {output}")


def execute_notebook(path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

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
    parser.add_argument("--output-dir", type=Path, default=IMAGES,
                        help="folder of the pictures (default: docs/images)")
    args = parser.parse_args(argv)
    if NEEDS_WEIGHTS & set(args.only):
        for path in (WEIGHTS, VIDEO):
            if not (ROOT / path).is_file():
                sys.exit(f"error: {ROOT / path} not found")
    out = args.output_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if "result" in args.only:
        make_result(out / "result.png")
    if "video" in args.only:
        make_video_strip(out / "video_strip.jpg")
    if "tracking" in args.only:
        make_tracking_frame(out / "tracking.jpg")
    if "losses" in args.only:
        make_loss_curve(out / "losses.png")
    if "skeleton" in args.only:
        make_skeleton(out / "skeleton.png")
    if "notebook" in args.only:
        execute_notebook(ROOT / "demo.ipynb")

if __name__ == "__main__":
    main()
