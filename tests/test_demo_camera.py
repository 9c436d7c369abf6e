"""demo_camera.py end to end: --help, a video into MP4 and JSON lines, one-line errors, Ctrl+C."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import cv2
import pytest

from demo_camera import main
from rtpose.people import People
from rtpose.stream.outputs import has_display, read_json_lines

HEADLESS_OPENCV = re.search(r"GUI:\s+NONE", cv2.getBuildInformation()) is not None


def test_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    usage = capsys.readouterr().out
    for flag in ("--camera", "--video", "--output", "--json", "--model", "--arch", "--scales",
                 "--max-frames", "--no-display", "--in-flight"):
        assert flag in usage


@pytest.mark.slow
def test_video_to_mp4_and_json_lines(shared_data, mobilenet_weights, tmp_path, capsys):
    street = shared_data / "videos" / "street_5frames.mp4"
    video, lines = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    main(["--video", str(street), "--no-display", "--output", str(video), "--json", str(lines),
          "--model", str(mobilenet_weights), "--smooth", "--min-cutoff", "0.5", "--beta", "2"])

    capture = cv2.VideoCapture(str(video))
    source = cv2.VideoCapture(str(street))
    for prop in (cv2.CAP_PROP_FRAME_COUNT, cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT,
                 cv2.CAP_PROP_FPS):
        assert capture.get(prop) == source.get(prop)
    drawn = [capture.read()[1] for _ in range(5)]
    originals = [source.read()[1] for _ in range(5)]
    assert all(a.shape == b.shape == (540, 960, 3) for a, b in zip(drawn, originals, strict=True))
    assert not capture.read()[0]

    records = read_json_lines(lines)
    assert [(r["frame"], r["timestamp"]) for r in records] == [
        (i, pytest.approx(i * 0.2)) for i in range(5)]
    people = [People.from_json(r) for r in records]
    assert all(len(p) >= 2 for p in people)  # pedestrians in every frame
    for frame in people:  # tracked (and smoothed): a different non-negative ID each
        ids = frame.person_ids.tolist()
        assert len(ids) == len(set(ids)) and min(ids) >= 0
    assert people[0].keypoints.shape[1:] == (18, 3)

    out = capsys.readouterr().out
    assert "5 frames from video" in out and "fps" in out and "grouping" in out
    assert "person IDs" in out


def test_missing_camera_and_video_are_one_line_errors(tmp_path):
    with pytest.raises(SystemExit, match=r"^error: cannot open camera 99 \(.*\)$"):
        main(["--camera", "99", "--no-display"])
    with pytest.raises(SystemExit, match="^error: cannot read video .*nope.mp4: no such file$"):
        main(["--video", str(tmp_path / "nope.mp4"), "--no-display"])


def test_unreadable_video_exits_with_one_line(repo_root, tmp_path):
    not_a_video = tmp_path / "notes.mp4"
    not_a_video.write_text("hello")
    done = subprocess.run(
        [sys.executable, "demo_camera.py", "--video", str(not_a_video), "--no-display"],
        cwd=repo_root, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: cannot read video {not_a_video}: not a video OpenCV can decode")
    assert "Traceback" not in done.stderr and "moov atom" not in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_cleanly_and_keeps_the_outputs(repo_root, shared_data,
                                                              mobilenet_weights, tmp_path, stop):
    """Ctrl+C, or SIGTERM (kill, timeout, docker stop), finishes both files: the video is
    readable and holds as many frames as the JSON lines."""
    video, lines = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    process = subprocess.Popen(
        [sys.executable, "demo_camera.py", "--video", str(shared_data / "videos" / "sample1.mp4"),
         "--no-display", "--output", str(video), "--json", str(lines),
         "--model", str(mobilenet_weights)],
        cwd=repo_root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        partial = list(tmp_path.glob(".tmp-*.out.jsonl"))  # complete only when renamed
        if partial and len(partial[0].read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    assert not lines.exists() and not video.exists()
    process.send_signal(stop)
    out, err = process.communicate(timeout=60)

    assert process.returncode == 0, err
    assert "stopped early: Ctrl+C or SIGTERM" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "out.mp4"]
    written = len(read_json_lines(lines))
    assert 2 <= written < 195
    assert cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FRAME_COUNT) == written


def test_display_detection(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert has_display() is not sys.platform.startswith("linux")
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert has_display()


@pytest.mark.slow
def test_headless_runs_without_a_window_even_without_no_display(shared_data, mobilenet_weights,
                                                                monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    main(["--video", str(shared_data / "videos" / "street_5frames.mp4"), "--max-frames", "1",
          "--model", str(mobilenet_weights)])
    assert "1 frames from video" in capsys.readouterr().out


@pytest.mark.skipif(not HEADLESS_OPENCV, reason="needs an OpenCV without GUI support")
def test_a_window_without_gui_support_is_a_one_line_error(shared_data, monkeypatch):
    monkeypatch.setenv("DISPLAY", ":0")
    with pytest.raises(SystemExit, match="^error: cannot open a window: .* --no-display"):
        main(["--video", str(shared_data / "videos" / "street_5frames.mp4")])
