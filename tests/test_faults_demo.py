"""Faults of inference (issue 15, cases 2, 3c, 4-6, 9-13): weights and config files,
``demo_image.py``, the pipeline's bounds, damaged images; the SIGTERM'd video of case 2 is in
tests/test_demo_camera.py."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import dead_pid

from rtpose.errors import RtposeError, WeightsError


def test_weights_with_nan_or_inf_are_refused(random_weights: Path, tmp_path: Path):
    """Case 4: weights of a diverged training are one line (``load_model`` and the trainer's
    ``--init-weights`` both load through ``Architecture.load_weights``)."""
    import h5py

    from rtpose.models import load_model

    diverged = tmp_path / "diverged.weights.h5"
    shutil.copy(random_weights, diverged)
    with h5py.File(diverged, "r+") as file:
        arrays = []
        file.visititems(lambda name, item: arrays.append(item)
                        if isinstance(item, h5py.Dataset) and item.ndim else None)
        arrays[0][...] = np.nan
        arrays[-1][...] = np.inf
    with pytest.raises(WeightsError) as excinfo:
        load_model(None, diverged)
    assert re.fullmatch(
        f"{re.escape(str(diverged))}: the weights contain NaN or infinite values \\(2 of \\d+ "
        r"arrays, the first \S+\); they come from a diverged training: use an earlier checkpoint",
        str(excinfo.value)), str(excinfo.value)


def test_weights_with_a_corrupted_b_tree_are_one_line(random_weights: Path, tmp_path: Path):
    """Case 13: h5py's RuntimeError on a broken B-tree node becomes a WeightsError."""
    from rtpose.models import get_architecture, load_model

    data = bytearray(random_weights.read_bytes())
    nodes = [m.start() for m in re.finditer(b"TREE", data)]
    assert nodes
    for start in nodes:  # each B-tree node's type and level bytes
        data[start + 4: start + 6] = b"\xff\xff"
    broken = tmp_path / "broken.weights.h5"
    broken.write_bytes(bytes(data))
    with pytest.raises(WeightsError) as excinfo:
        load_model(None, broken)
    assert str(excinfo.value).startswith(f"{broken}: not a readable HDF5 weights file (")
    architecture = get_architecture("mobilenet_thin")
    with pytest.raises(WeightsError) as excinfo:
        architecture.load_weights(architecture.build(), broken)
    assert str(excinfo.value).startswith(f"{broken}: ")
    assert "\n" not in str(excinfo.value)


def test_config_file_that_is_not_utf8(tmp_path: Path):
    """Case 12."""
    from rtpose.config import load_config

    path = tmp_path / "config"
    path.write_bytes("[param]\nthre1 = 0.1  # seuil défini\n".encode("latin-1"))
    with pytest.raises(RtposeError) as excinfo:
        load_config(path)
    assert str(excinfo.value) == (f"config file {path} is not UTF-8 text (it holds the byte "
                                  "0xe9); save it as UTF-8")




SKI = "sample_images/ski.jpg"


def _demo_image(repo_root, *args):
    from demo_image import main

    with pytest.raises(SystemExit) as stop:
        main(["--image", str(repo_root / SKI), *map(str, args)])
    message = str(stop.value.code)
    assert message.startswith("error: ") and "\n" not in message
    return message


def test_a_panorama_strip_is_bounded_not_run(repo_root, mobilenet_weights, tmp_path):
    """Case 10: a 4 x 3000 PNG would be fed as 276,000 x 368 pixels (18 GB and rising)."""
    wide = tmp_path / "wide.png"
    cv2.imwrite(str(wide), np.zeros((4, 3000, 3), np.uint8))
    from demo_image import main

    with pytest.raises(SystemExit) as stop:
        main(["--image", str(wide), "--scales", "1.0", "--model", str(mobilenet_weights),
              "--output", str(tmp_path / "r.png")])
    assert "276000x368 pixels (over --max-pixels 4,000,000)" in str(stop.value.code)
    assert not (tmp_path / "r.png").exists()


def test_a_scale_that_empties_the_image_is_one_line(repo_root, mobilenet_weights, tmp_path):
    """Case 11: --scales 0.001 made cv2 fail with !dsize.empty()."""
    message = _demo_image(repo_root, "--scales", "0.001", "--model", mobilenet_weights,
                          "--output", tmp_path / "r.png")
    assert "too small for the network" in message


def test_a_config_stride_is_checked_against_the_architecture(repo_root, mobilenet_weights,
                                                             tmp_path):
    """Case 5: stride = 7 in a config file moved every keypoint."""
    config = tmp_path / "config"
    config.write_text("[param]\nscale_search = 1.0\n[models]\n[[1]]\nstride = 7\n")
    message = _demo_image(repo_root, "--config", config, "--model", mobilenet_weights,
                          "--output", tmp_path / "r.png")
    assert "stride 7 is not the network's: the mobilenet_thin architecture has stride 8" in message


@pytest.mark.parametrize(("flag", "value"), [("--thre1", "-5"), ("--thre2", "1.5")])
def test_thresholds_are_bounded(repo_root, tmp_path, flag, value):
    """Case 6: --thre1 -5 found 6 people instead of 5, silently."""
    message = _demo_image(repo_root, flag, value, "--output", tmp_path / "r.png")
    assert f"{flag[2:]} must be in [0, 1), got {float(value)}" in message


def test_an_unwritable_json_fails_before_anything_is_written(repo_root, tmp_path):
    """Case 3: --json missing/dir/p.json wrote result.png, then failed."""
    message = _demo_image(repo_root, "--json", tmp_path / "missing" / "p.json",
                          "--output", tmp_path / "result.png")
    assert "no folder" in message and not (tmp_path / "result.png").exists()


def test_a_truncated_jpeg_is_read_with_a_warning(shared_data, tmp_path):
    """Case 9: a truncated JPEG ran with only libjpeg's own line and found 3 of 5 people."""
    from rtpose.stream.images import read_image

    data = (shared_data / "sample_images" / "ski.jpg").read_bytes()
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    warnings = []
    image = read_image(truncated, warn=warnings.append)
    assert image.shape == (674, 712, 3)
    assert len(warnings) == 1 and "cut.jpg is damaged (the JPEG is truncated)" in warnings[0]
    read_image(shared_data / "sample_images" / "ski.jpg", warn=warnings.append)
    assert len(warnings) == 1
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(RtposeError, match="empty.jpg: not a readable image"):
        read_image(tmp_path / "empty.jpg")


def test_an_image_write_interrupted_leaves_the_previous_file(tmp_path, monkeypatch):
    """Atomic writes: an interruption while writing keeps the last good file, and no leftover."""
    from rtpose.stream import images

    target = tmp_path / "people.json"
    images.write_json(target, {"people": [1]})

    def interrupted(self, text, *args, **kwargs):
        with open(self, "w") as file:
            file.write(text[:5])
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", interrupted)
    with pytest.raises(KeyboardInterrupt):
        images.write_json(target, {"people": [2]})
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"people": [1]}
    assert [p.name for p in tmp_path.iterdir()] == ["people.json"]


def test_the_next_run_removes_what_a_killed_one_left_beside_its_outputs(shared_data, tmp_path):
    """kill -9 while the demos write leaves hidden temporaries (never a file that looks
    complete); the next run writing into that folder removes those of dead processes only."""
    from rtpose.stream import images
    from rtpose.stream.outputs import JsonLinesOutput, VideoOutput
    from rtpose.stream.sources import open_source

    dead = [tmp_path / f".tmp-{dead_pid()}-0123abcd.{name}"
            for name in ("out.mp4", "out.jsonl", "result.png")]
    alive = tmp_path / f".tmp-{os.getppid()}-0123abcd.out.mp4"  # a run still writing
    for path in (*dead, alive):
        path.write_bytes(b"half")
    with open_source(video=shared_data / "videos" / "street_5frames.mp4") as source, \
            VideoOutput(tmp_path / "out.mp4", source):
        assert not dead[0].exists() and alive.exists()
    for path in dead[1:]:
        path.write_bytes(b"half")
    with JsonLinesOutput(tmp_path / "out.jsonl"):
        assert not dead[1].exists()
    images.write_image(tmp_path / "result.png", np.zeros((8, 8, 3), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["out.mp4", "out.jsonl", "result.png", alive.name])
