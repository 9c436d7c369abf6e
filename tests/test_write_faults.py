"""Faults, round 2, on the writing side: a full disk (a small tmpfs), a read-only one, folders
where files go and files where folders go, an output that is an input, and runs that drop
frames or people without saying so. Each fails in one line with a non-zero exit, before the
work where it can be known before, and never reports a failed write as a success."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import use_person_pipeline

from rtpose.errors import RtposeError
from rtpose.stream import images
from rtpose.stream.outputs import JsonLinesOutput, VideoOutput
from rtpose.stream.sources import open_video
from rtpose.tools import demo_camera, demo_image, evaluate_coco

REPO = Path(__file__).resolve().parents[1]
STREET = "videos/street_5frames.mp4"


def _mount(folder: Path, *options: str) -> None:
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs",
                           str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")


@contextmanager
def _full_disk(tmp_path: Path, free_kb: int):
    """A 64 KB tmpfs, filled but for ``free_kb`` KB: a disk about to be full."""
    folder = tmp_path / "full"
    _mount(folder, "size=64k")
    try:
        free = shutil.disk_usage(folder).free
        with open(folder / "filler", "wb") as file:
            try:
                file.write(bytes(free - free_kb * 1024))
            except OSError:
                pass
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def full_disk(tmp_path):
    with _full_disk(tmp_path, 1) as folder:
        yield folder


@pytest.fixture
def person_model(monkeypatch):
    """The tools with ``person_pipeline`` for their model; the calls, to see it was not built."""
    return use_person_pipeline(monkeypatch, demo_image, demo_camera, evaluate_coco)


def _error(capsys, call) -> str:
    """Run ``call()`` (a tool's main), expect it to exit with one line (``error: ...``)."""
    with pytest.raises(SystemExit) as info:
        call()
    lines = str(info.value.code).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), info.value.code
    return lines[0]


# --- group 6: disk full, read-only, not a folder ---------------------------------------------


@pytest.mark.parametrize("free_kb", [1, 24])
def test_a_video_on_a_full_disk_is_not_reported_as_written(shared_data, tmp_path, free_kb,
                                                          person_model, capsys):
    """demo_camera --output on a full disk said 'wrote out.mp4' and exited 0, and no frame of
    the file decoded. With 1 KB free the writer cannot start; with 24 KB it starts, and frames
    are lost."""
    with _full_disk(tmp_path, free_kb) as full:
        out = full / "out.mp4"
        line = _error(capsys, lambda: demo_camera.main([
            "--video", str(shared_data / STREET), "--no-display", "--output", str(out)]))
        assert line == f"error: cannot write video {out}: no space left on the device (the " \
                       "disk or quota is full)"
        assert "wrote" not in capsys.readouterr().out
        assert sorted(os.listdir(full)) == ["filler"]  # no output, no temporary


def test_json_lines_and_images_on_a_full_disk_are_one_line(shared_data, full_disk,
                                                           person_model, capsys):
    """A full disk under --json ended in a raw OSError; under demo_image it was 'check the
    folder and the extension'."""
    out = full_disk / "out.jsonl"
    line = _error(capsys, lambda: demo_camera.main([
        "--video", str(shared_data / STREET), "--no-display", "--json", str(out)]))
    assert line == f"error: cannot write {out}: no space left on the device (the disk or " \
                   "quota is full)"
    ski = str(shared_data / "sample_images" / "ski.jpg")
    line = _error(capsys, lambda: demo_image.main([
        "--image", ski, "--scales", "1", "--output", str(full_disk / "result.png")]))
    assert line.endswith("result.png: no space left on the device (the disk or quota is full)")
    with pytest.raises(RtposeError, match="no space left on the device"):
        images.write_json(full_disk / "people.json", {"people": [list(range(1000))]})
    assert sorted(os.listdir(full_disk)) == ["filler"]


def test_a_read_only_disk_and_a_folder_in_the_way(shared_data, tmp_path, person_model, capsys):
    read_only = tmp_path / "ro"
    _mount(read_only, "size=64k", "ro")
    try:
        with pytest.raises(RtposeError, match="not writable|read-only"):
            images.check_writable(read_only / "out.png")
        with pytest.raises(RtposeError, match="cannot write in .*read-only"):
            images.check_folder_writable(read_only / "logs", "--logs-dir")
    finally:
        subprocess.run(["umount", "-l", str(read_only)], check=False)
    (tmp_path / "out.jsonl").mkdir()
    line = _error(capsys, lambda: demo_camera.main([
        "--video", str(shared_data / STREET), "--no-display", "--json",
        str(tmp_path / "out.jsonl")]))
    assert line == f"error: cannot write {tmp_path / 'out.jsonl'}: it is a folder, not a " \
                   "regular file"
    assert person_model == []  # refused before the model was built, not after every frame
    with pytest.raises(RtposeError, match="it is a device, not a regular file"):
        images.check_writable("/dev/null")


def test_logs_dir_on_a_file_is_one_line_before_tensorflow(tmp_path):
    """--logs-dir on a file ended in a TensorFlow error."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    for logs, reason in ((afile, ""), (afile / "sub", f" ({afile} is a file)")):
        done = subprocess.run(
            [sys.executable, "-m", "rtpose.tools.train_pose", "--logs-dir", str(logs),
             "--weights-dir", str(tmp_path / "ok")], capture_output=True, text=True, cwd=REPO,
            timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert done.returncode == 1
        assert done.stderr == f"error: --logs-dir {logs} is not a folder{reason}\n"
    assert not (tmp_path / "ok").exists()


def test_get_cmu_model_checks_its_output_before_converting(tmp_path):
    """get_cmu_model.sh --output /proc/... failed only after converting."""
    for output, reason in (("/proc/x.weights.h5", "--output's folder /proc: cannot write in "
                            "/proc"),
                           (f"{tmp_path}/model.weights.h5/", None),
                           ("/etc/hostname/x.weights.h5", "--output's folder /etc/hostname is "
                            "not a folder")):
        if reason is None:
            Path(output).mkdir()
            reason = f"cannot write {output.rstrip('/')}: it is a folder"
        done = subprocess.run(["bash", "model/get_cmu_model.sh", "--pth", str(tmp_path / "no"),
                               "--no-verify", "--output", output],
                              capture_output=True, text=True, cwd=REPO, timeout=60,
                              env={**os.environ, "PYTHON": sys.executable})
        assert done.returncode == 1 and done.stderr.startswith(f"error: {reason}"), done.stderr
        assert len(done.stderr.splitlines()) == 1


# --- group 7: silent drops -------------------------------------------------------------------


def _video(path: Path, frames: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), (i * 3) % 256, np.uint8))
    writer.release()
    return path


def test_a_truncated_video_says_how_many_frames_were_decoded(tmp_path, person_model, capsys):
    """demo_camera on a truncated video said nothing, where extraction says 'decoding stopped
    after 70 of 80 frames'."""
    video = _video(tmp_path / "cut.avi", 80)
    os.truncate(video, video.stat().st_size * 85 // 100)
    with open_video(video) as frames:
        decoded = len(list(frames))
    assert decoded < 78
    with pytest.raises(SystemExit) as info:
        demo_camera.main(["--video", str(video), "--no-display", "--json",
                          str(tmp_path / "cut.jsonl")])
    assert info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()  # the progress bar's, then the reason
    assert err[-1] == (f"error: decoding of video {video} stopped after {decoded} of the 80 "
                       "frames its header states (truncated or corrupt)")
    assert len((tmp_path / "cut.jsonl").read_text().splitlines()) == decoded  # kept

    whole = _video(tmp_path / "whole.avi", 30)
    demo_camera.main(["--video", str(whole), "--no-display"])
    assert "decoding" not in capsys.readouterr().err


def _annotations(shared_data: Path, tmp_path: Path, keep_people: bool) -> Path:
    data = json.loads((shared_data / "coco_eval" / "mmpose_coco4" / "test_coco.json").read_text())
    if not keep_people:
        data["annotations"] = []
    path = tmp_path / ("people.json" if keep_people else "nobody.json")
    path.write_text(json.dumps(data))
    return path


def test_evaluation_without_people_or_with_a_bad_limit_is_refused(shared_data, tmp_path,
                                                                 person_model, capsys):
    """Annotations with no person printed AP -1.000 and exited 0; --limit -1 dropped the last
    image and --limit 0 scored nothing, both with exit 0."""
    images_dir = shared_data / "coco_eval" / "mmpose_coco4"
    nobody = _annotations(shared_data, tmp_path, keep_people=False)
    out = tmp_path / "results.json"
    line = _error(capsys, lambda: evaluate_coco.main([
        "--annotations", str(nobody), "--images", str(images_dir), "--output", str(out)]))
    assert line.startswith(f"error: {nobody}: no person with keypoints on the 4 images")
    line = _error(capsys, lambda: evaluate_coco.main([
        "--annotations", str(nobody), "--results", str(images_dir / "example_coco_preds.json")]))
    assert "no person with keypoints" in line
    assert person_model == [] and not out.exists()
    people = _annotations(shared_data, tmp_path, keep_people=True)
    for limit in ("-1", "0", "x"):
        with pytest.raises(SystemExit) as info:
            evaluate_coco.main(["--annotations", str(people), "--images", str(images_dir),
                                "--limit", limit])
        assert info.value.code == 2  # argparse's usage, then its one error line
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert last.endswith(f"argument --limit: not a positive integer: '{limit}'")


def test_missing_images_are_found_before_the_work(shared_data, tmp_path, person_model, capsys):
    """evaluate_coco stopped at the first missing image after the work."""
    people = _annotations(shared_data, tmp_path, keep_people=True)
    images_dir = tmp_path / "images"
    shutil.copytree(shared_data / "coco_eval" / "mmpose_coco4", images_dir)
    (images_dir / "000000196141.jpg").unlink()
    (images_dir / "000000197388.jpg").unlink()
    line = _error(capsys, lambda: evaluate_coco.main([
        "--annotations", str(people), "--images", str(images_dir)]))
    assert line == f"error: 2 of the 4 images are missing from {images_dir}, e.g. " \
                   "000000196141.jpg"
    assert person_model == []


# --- group 8: the same file as input and output ------------------------------------------------


def test_an_output_that_is_an_input_or_another_output_is_refused(shared_data, tmp_path,
                                                                 person_model, capsys):
    """demo_image --image p.jpg --output p.jpg replaced the photo; --output x.png --json x.png
    wrote JSON into the picture; evaluate_coco --output on the annotations overwrote them."""
    photo = tmp_path / "p.jpg"
    shutil.copy(shared_data / "sample_images" / "ski.jpg", photo)
    before = photo.read_bytes()
    os.link(photo, tmp_path / "hard.jpg")
    (tmp_path / "link.jpg").symlink_to(photo)
    cases = [
        (["--output", str(photo)], f"--output {photo} is the same file as --image {photo}"),
        (["--output", str(tmp_path / "hard.jpg")], "is the same file as --image"),
        (["--output", str(tmp_path / "link.jpg")], "is the same file as --image"),
        (["--output", str(tmp_path / "x.png"), "--json", str(tmp_path / "x.png")],
         f"--json {tmp_path / 'x.png'} is the same file as --output {tmp_path / 'x.png'}"),
        (["--output", str(tmp_path / "sub" / ".." / "x.png"), "--json", str(tmp_path / "x.png")],
         "is the same file as --output"),
    ]
    for extra, expected in cases:
        line = _error(capsys, lambda extra=extra: demo_image.main(
            ["--image", str(photo), "--scales", "1", *extra]))
        assert line.startswith("error: ") and expected in line, line
    assert photo.read_bytes() == before and not (tmp_path / "x.png").exists()

    video = tmp_path / "v.mp4"
    shutil.copy(shared_data / STREET, video)
    line = _error(capsys, lambda: demo_camera.main([
        "--video", str(video), "--no-display", "--json", str(video)]))
    assert f"--json {video} is the same file as --video {video}" in line
    annotations = _annotations(shared_data, tmp_path, keep_people=True)
    kept = annotations.read_bytes()
    line = _error(capsys, lambda: evaluate_coco.main([
        "--annotations", str(annotations), "--images", str(tmp_path), "--output",
        str(annotations)]))
    assert f"--output {annotations} is the same file as --annotations" in line
    assert annotations.read_bytes() == kept and person_model == []


def test_a_video_output_that_does_not_read_back_is_not_kept(shared_data, tmp_path, monkeypatch):
    """The check behind the full-disk case, on a disk with room: a video whose frames are not
    all in the file is removed and reported."""
    with open_video(shared_data / STREET) as source:
        video = VideoOutput(tmp_path / "out.mp4", source)
        frames = list(source)
        for frame in frames:
            video.write(frame, None, frame.image)
        video.frames += 3  # as if three frames had been lost on the way
        with pytest.raises(RtposeError, match="does not read back as a video of 8 frames "
                                              r"\(it has 5\)"):
            video.close()
    assert os.listdir(tmp_path) == []
    with JsonLinesOutput(tmp_path / "ok.jsonl"):
        pass
    assert os.listdir(tmp_path) == ["ok.jsonl"]
