"""Faults, round 2, on the reading side: names that are not UTF-8 (OpenCV crashed on them), images
and tensors larger than their files (checked from headers before anything is allocated), the
faithful decoder's full-size maps, and one-line reasons that say what is really wrong (a FIFO, a
folder, a permission) before any work."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import FunctionNetwork, person_network, person_pipeline, use_person_pipeline
from weight_files import TensorSpec, contiguous, state_pickle, write_pth

from rtpose.config import InferenceParams
from rtpose.convert import pth, state_dict
from rtpose.decode.faithful import MAX_PIXELS, average_maps
from rtpose.errors import RtposeError
from rtpose.geometry import Geometry
from rtpose.pipeline import PosePipeline
from rtpose.stream.images import read_image
from rtpose.stream.sources import open_video
from rtpose.tools import demo_camera, demo_image

TESTS = Path(__file__).resolve().parent
CAFE = os.fsdecode(b"caf\xe9")  # a Latin-1 name: not UTF-8, os.fsdecode escapes the byte


def _demo(tool: str, *args, cwd: Path) -> subprocess.CompletedProcess:
    """``tool`` (demo_image or demo_camera) with the person pipeline, in a subprocess; names
    that are not UTF-8 go as their bytes."""
    argv = [sys.executable, str(TESTS / "demo_driver.py"), tool, *map(os.fsencode, map(str, args))]
    return subprocess.run(argv, cwd=cwd, capture_output=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(TESTS.parent)})


def _one_line(done: subprocess.CompletedProcess) -> str:
    stderr = done.stderr.decode(errors="replace")
    assert done.returncode == 1 and "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.fixture
def person_model(monkeypatch):
    """The tools with ``person_pipeline`` for their model; the calls, to see it was not built."""
    return use_person_pipeline(monkeypatch, demo_image, demo_camera)


# --- group 2: names that are not UTF-8 -------------------------------------------------------


def test_demos_read_and_write_names_that_are_not_utf8(shared_data, tmp_path):
    """demo_image and demo_camera died with SIGSEGV (exit 139, nothing printed) on caf\\xe9.jpg
    and caf\\xe9.mp4; their outputs may carry such names too, and so may a folder."""
    image = tmp_path / f"{CAFE}.jpg"
    shutil.copy(shared_data / "sample_images" / "ski.jpg", image)
    done = _demo("demo_image", "--image", image, "--output", tmp_path / f"{CAFE}.png",
                 "--json", tmp_path / f"{CAFE}.json", "--scales", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert b"caf\xe9.jpg" in done.stdout  # printed as the name's own bytes
    drawn = cv2.imdecode(np.fromfile(tmp_path / f"{CAFE}.png", np.uint8), cv2.IMREAD_COLOR)
    assert drawn.shape == (674, 712, 3)
    assert len(json.loads((tmp_path / f"{CAFE}.json").read_text())["people"]) == 1

    folder = tmp_path / CAFE
    folder.mkdir()
    video = folder / f"{CAFE}.mp4"
    shutil.copy(shared_data / "videos" / "street_5frames.mp4", video)
    done = _demo("demo_camera", "--video", video, "--no-display", "--output",
                 folder / f"{CAFE}-out.mp4", "--json", folder / "out.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with open_video(folder / f"{CAFE}-out.mp4") as written:
        assert len(list(written)) == 5
    assert len((folder / "out.jsonl").read_text().splitlines()) == 5
    assert sorted(os.listdir(folder)) == sorted([f"{CAFE}.mp4", f"{CAFE}-out.mp4", "out.jsonl"])


def test_the_shared_readers_take_names_that_are_not_utf8(shared_data, tmp_path, monkeypatch):
    """Through bytes for images, an ASCII alias for videos: the same pixels as an ASCII name."""
    aliases = tmp_path / "aliases"
    aliases.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(aliases))
    image = tmp_path / f"{CAFE}.jpg"
    shutil.copy(shared_data / "sample_images" / "ski.jpg", image)
    expected = cv2.imread(str(shared_data / "sample_images" / "ski.jpg"))
    np.testing.assert_array_equal(read_image(image), expected)
    video = tmp_path / f"{CAFE}.avi"
    shutil.copy(shared_data / "videos" / "street_5frames.mp4", video)
    with open_video(video) as frames, \
            open_video(shared_data / "videos" / "street_5frames.mp4") as reference:
        for ours, theirs in zip(frames, reference, strict=True):
            np.testing.assert_array_equal(ours.image, theirs.image)
    assert list(aliases.iterdir()) == []  # the alias is removed


# --- group 11: sizes from headers, before allocating -------------------------------------------


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (8-bit RGB) and whose data is 1 KB of
    zeros: a few bytes that would decode to a huge image."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(bytes(1024))) + chunk(b"IEND", b""))


def test_a_huge_png_is_refused_from_its_header(tmp_path, person_model):
    """A 0.87 MB PNG of 30000 x 30000 took 5.6 GB in demo_image."""
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header(30000, 30000))
    with pytest.raises(RtposeError, match=r"30000 x 30000 is 900,000,000 pixels, more than "
                                          r"the limit of 100,000,000 \(--max-image-pixels\)"):
        read_image(bomb)
    with pytest.raises(SystemExit, match="^error: cannot read image .*bomb.png: 30000 x 30000"):
        demo_image.main(["--image", str(bomb), "--output", str(tmp_path / "out.png")])
    assert person_model == []  # refused before the model was built


def test_the_pixel_bound_applies_to_jpeg_and_video_headers_too(shared_data, tmp_path):
    ski = shared_data / "sample_images" / "ski.jpg"  # 712 x 674
    assert read_image(ski, max_pixels=712 * 674).shape == (674, 712, 3)
    with pytest.raises(RtposeError, match="712 x 674 is 479,888 pixels, more than the limit"):
        read_image(ski, max_pixels=712 * 674 - 1)
    video = shared_data / "videos" / "street_5frames.mp4"
    with open_video(video) as frames:
        width, height = frames.size
    with pytest.raises(RtposeError, match=f"cannot read video .*its {width} x {height} frames "
                                          "are more than the limit"):
        open_video(video, max_pixels=width * height - 1)
    with pytest.raises(SystemExit, match=f"{width} x {height} frames .*--max-image-pixels"):
        demo_camera.main(["--video", str(video), "--no-display", "--max-image-pixels", "1000"])


def test_a_small_pth_claiming_a_huge_tensor_is_refused_before_allocating(tmp_path):
    """A 650-byte .pth claiming a tensor of 10^13 elements asked for 36 TiB (here 2e9, the
    most the tests' pickle writer can state: 8 GB)."""
    for legacy in (False, True):
        path = write_pth(tmp_path / f"huge{legacy}.pth",
                         {"conv1_1.weight": TensorSpec("0", 0, (2_000_000_000,), (0,))},
                         {"0": np.zeros(1, "float32")}, legacy=legacy)
        assert path.stat().st_size < 1000
        with pytest.raises(pth.PthFormatError, match="claims 2,000,000,000 elements, its "
                                                     "storage holds 1"):
            pth.read_pth(path, progress=False)
        with pytest.raises(pth.PthFormatError, match="claims"):
            pth.pth_shapes(path)


def test_names_and_shapes_are_checked_against_the_model_before_the_data(tmp_path, monkeypatch):
    """A tensor of 5e8 elements in the CMU model's names took 2.9 GB: its shape is refused
    from the pickle, before any storage is read."""
    state = {"conv1_1.weight": np.zeros((64, 3, 3, 3), "float32"),
             "conv1_1.bias": np.zeros(64, "float32")}
    tensors, storages = contiguous(state)
    tensors["conv1_1.bias"] = TensorSpec("1", 0, (500_000_000,), (1,))
    claimed = {**storages, "1": np.broadcast_to(np.float32(0), (500_000_000,))}  # no memory
    path = write_pth(tmp_path / "big.pth", tensors, storages,
                     data_pickle=state_pickle(tensors, claimed, legacy=False))
    shapes = pth.pth_shapes(path)  # the pickle only
    assert shapes == {"conv1_1.weight": (64, 3, 3, 3), "conv1_1.bias": (500_000_000,)}
    expected = {"conv1_1.weight": (64, 3, 3, 3), "conv1_1.bias": (64,)}
    message = r"conv1_1.bias is \(500000000,\), the model's \(64,\)"
    with pytest.raises(state_dict.PthArchitectureError, match=message):
        state_dict.check_shapes(shapes, expected, str(path), "cmu_pose")
    monkeypatch.setattr(state_dict, "read_pth", lambda *a, **k: pytest.fail("the data was read"))
    with pytest.raises(state_dict.PthArchitectureError, match="wrong architecture"):
        state_dict.convert_pth(path, tmp_path / "out.weights.h5", stages=1, progress=False)


def test_the_faithful_decoder_refuses_images_whose_maps_do_not_fit():
    """--decoder faithful on a 24 MP photo asked for one 6.8 GiB float64 array."""
    calls = []
    network = FunctionNetwork(lambda batch: calls.append(batch.shape) or person_network(batch))
    pipeline = PosePipeline(network, InferenceParams(scales=(1.0,), boxsize=184),
                            decoder="faithful")
    with pytest.raises(RtposeError, match=r"faithful decoder needs .* GB .* for a 4000 x 3000 "
                                          r"image, over its bound of 8,000,000 pixels"):
        pipeline.run(np.zeros((3000, 4000, 3), np.uint8))
    assert calls == []  # before the network ran
    geometry = Geometry((6000, 4000), ((0, 0, 0, 0),), 8)
    assert 6000 * 4000 > MAX_PIXELS
    with pytest.raises(RtposeError, match="use --decoder fast"):
        average_maps([(np.zeros((750, 500, 19), np.float32),
                       np.zeros((750, 500, 38), np.float32))], geometry)


# --- group 13: the reason said is the real one, before any work --------------------------------


def test_a_fifo_a_folder_and_a_device_are_named_and_never_block(tmp_path, person_model):
    """A FIFO was reported as 'no such file' (and --list on one blocked)."""
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(RtposeError, match=r"pipe.jpg: a FIFO \(named pipe\), not a regular file$"):
        read_image(fifo)
    with pytest.raises(SystemExit, match=r"^error: cannot read video .*pipe.jpg: a FIFO"):
        demo_camera.main(["--video", str(fifo), "--no-display"])
    with pytest.raises(RtposeError, match="a folder, not a regular file$"):
        read_image(tmp_path)
    with pytest.raises(RtposeError, match="/dev/null: a device, not a regular file$"):
        open_video("/dev/null")
    assert person_model == []


def test_a_permission_error_is_not_reported_as_undecodable(shared_data):
    """An unreadable video was 'not a video OpenCV can decode'."""
    folder = Path(tempfile.mkdtemp())
    try:
        folder.chmod(0o755)
        for name, source in (("v.mp4", "videos/street_5frames.mp4"),
                             ("i.jpg", "sample_images/ski.jpg")):
            shutil.copy(shared_data / source, folder / name)
            (folder / name).chmod(0)
        with _as_nobody():
            with pytest.raises(RtposeError, match="^cannot read video .*v.mp4: Permission denied$"):
                open_video(folder / "v.mp4")
            with pytest.raises(RtposeError, match="^cannot read image .*i.jpg: Permission denied$"):
                read_image(folder / "i.jpg")
    finally:
        shutil.rmtree(folder)


@contextmanager
def _as_nobody():
    """Root reads every file: the block runs as user nobody (effective ids only)."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def test_extraction_workers_read_names_that_are_not_utf8(shared_data, tmp_path, monkeypatch):
    """extract_poses.py recorded 'worker process died' for a valid caf\\xe9.jpg or .mp4."""
    from rtpose.extract import load_corpus
    from rtpose.extract.manifest import read_manifest
    from rtpose.tools import extract_poses

    monkeypatch.setattr(extract_poses, "pipeline_from_args", person_pipeline)
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(shared_data / "sample_images" / "ski.jpg", data / f"{CAFE}.jpg")
    shutil.copy(shared_data / "videos" / "street_5frames.mp4", data / f"{CAFE}-v.mp4")
    out = tmp_path / "out"
    extract_poses.main([str(data), "--output", str(out), "--workers", "1", "--boxsize", "184",
                        "--model", "unused.weights.h5", "--no-progress"])
    records = read_manifest(out / "manifest.jsonl")
    assert {name: r["status"] for name, r in records.items()} == {
        f"{CAFE}.jpg": "done", f"{CAFE}-v.mp4": "done"}
    corpus = load_corpus(out)
    assert len(corpus[f"{CAFE}-v.mp4"]) == 5 and len(corpus[f"{CAFE}.jpg"]) == 1
