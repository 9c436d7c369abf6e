"""extract_poses.py over a dataset: good and bad inputs, the manifest, reruns, kill -9 then
resume, the three formats read back, the inputs' names, the stores, and the Ray engine.

Most runs use ``helpers.person_pipeline`` (one synthetic person per frame, its place set by the
frame's colour) in place of the model, in the tool's own worker processes; one runs the real
MobileNet-thin at a small input size."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import person_pipeline

import rtpose.tools.extract_poses as tool
from rtpose.errors import RtposeError
from rtpose.extract import load_corpus, load_poses
from rtpose.extract.inputs import collect_inputs
from rtpose.extract.manifest import Manifest, read_manifest
from rtpose.extract.run import KILL_AFTER_VARIABLE
from rtpose.extract.store import FsspecStore, LocalStore
from rtpose.extract.writers import write_npz
from rtpose.files import FolderLock
from rtpose.stream.outputs import read_json_lines

FAST = ["--boxsize", "184", "--model", "unused.weights.h5", "--no-progress"]
SIZE = (160, 120)


def make_video(path: Path, frames: int, fourcc: str = "mp4v", seed: int = 0) -> Path:
    """A clip whose green level changes every frame (so its person moves), with noise."""
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, SIZE)
    for i in range(frames):
        image = rng.integers(0, 60, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
        image[..., 1] = (25 * i + 40 * seed) % 256
        writer.write(image)
    writer.release()
    return path


def make_image(path: Path, green: int) -> Path:
    image = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    image[..., 1] = green
    cv2.imwrite(str(path), image)
    return path


@pytest.fixture
def fake_model(monkeypatch):
    """The tool with ``person_pipeline`` for its model (pickled into its worker processes)."""
    monkeypatch.setattr(tool, "pipeline_from_args", person_pipeline)


def run_tool(args: list[str]) -> int:
    with pytest.raises(SystemExit) as info:
        tool.main(args)
    return info.value.code


def run_ok(args: list[str]) -> None:
    try:
        tool.main(args)
    except SystemExit as exit_info:
        pytest.fail(f"exit code {exit_info.code}")


def files(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (hidden ones too), but the manifest and the run's lock, by
    relative path."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.relative_to(folder).as_posix() not in ("manifest.jsonl",
                                                                        ".lock")}


@pytest.fixture
def dataset(tmp_path) -> Path:
    """Good inputs in nested folders, and bad ones: an empty video, a text file named .mp4, a
    truncated video, an empty image, a text file named .png; and a file of another type."""
    root = tmp_path / "data"
    (root / "clips" / "day1").mkdir(parents=True)
    (root / "pictures").mkdir()
    make_video(root / "clips" / "day1" / "a.mp4", 6, seed=1)
    make_video(root / "clips" / "b.avi", 4, seed=2)
    make_image(root / "pictures" / "p1.png", 50)
    make_image(root / "pictures" / "p2.jpg", 200)
    (root / "clips" / "empty.mp4").write_bytes(b"")
    (root / "clips" / "text.mp4").write_text("not a video")
    whole = make_video(tmp_path / "whole.avi", 8, seed=3).read_bytes()
    (root / "clips" / "truncated.avi").write_bytes(whole[:len(whole) // 2])
    (root / "pictures" / "empty.jpg").write_bytes(b"")
    (root / "pictures" / "text.png").write_text("not an image")
    (root / "notes.txt").write_text("not an input")
    return root


GOOD = {"clips/day1/a.mp4": 6, "clips/b.avi": 4, "pictures/p1.png": 1, "pictures/p2.jpg": 1}
BAD = {
    "clips/empty.mp4": "the file is empty",
    "clips/text.mp4": "not a video OpenCV can decode",
    "clips/truncated.avi": "decoding stopped after 4 of its 8 frames (truncated or corrupt)",
    "pictures/empty.jpg": "the file is empty",
    "pictures/text.png": "not a readable image",
}


def test_help(capsys):
    assert run_tool(["--help"]) == 0
    usage = capsys.readouterr().out
    for flag in ("--list", "--output", "--format", "--every", "--max-frames", "--retry",
                 "--workers", "--engine", "--ray-address", "--render", "--model", "--scales"):
        assert flag in usage


def test_good_and_bad_inputs_then_a_rerun_that_does_nothing(dataset, tmp_path, fake_model,
                                                            capsys):
    out = tmp_path / "out"
    command = [str(dataset), "--output", str(out), "--format", "jsonl", "--workers", "2", *FAST]
    assert run_tool(command) == tool.FAILED_EXIT

    for name, frames in GOOD.items():
        lines = read_json_lines(out / name.rsplit(".", 1)[0].__add__(".jsonl"))
        assert len(lines) == frames
        assert [line["frame"] for line in lines] == list(range(frames))
        assert all(len(line["people"]) == 1 for line in lines)
    records = read_manifest(out / "manifest.jsonl")
    assert set(records) == set(GOOD) | set(BAD)
    for name, frames in GOOD.items():
        assert records[name]["status"] == "done" and records[name]["frames"] == frames
        assert records[name]["people"] == frames
    for name, reason in BAD.items():
        assert records[name]["status"] == "failed"
        assert records[name]["reason"].endswith(reason), records[name]["reason"]
        assert "\n" not in records[name]["reason"]
    # Only the good inputs' outputs, and no temporary file left.
    assert sorted(files(out)) == ["clips/b.jsonl", "clips/day1/a.jsonl", "pictures/p1.jsonl",
                                  "pictures/p2.jsonl"]
    report = capsys.readouterr().out
    assert "9 inputs (4 images, 5 videos); 1 other files skipped" in report
    assert "4 inputs done" in report and "12 frames" in report and "5 inputs failed" in report

    # The same command again: nothing to do, nothing written, still failures to report.
    before, manifest = files(out), (out / "manifest.jsonl").read_bytes()
    assert run_tool(command) == tool.FAILED_EXIT
    assert files(out) == before and (out / "manifest.jsonl").read_bytes() == manifest
    report = capsys.readouterr().out
    assert "0 inputs done" in report and "4 inputs already done" in report
    assert "5 inputs failed before (--retry retries them)" in report

    # --retry runs the failed ones (only): they fail again, one more record each.
    assert run_tool([*command, "--retry"]) == tool.FAILED_EXIT
    added = (out / "manifest.jsonl").read_bytes()[len(manifest):].decode().splitlines()
    assert sorted(json.loads(line)["input"] for line in added) == sorted(BAD)
    assert files(out) == before


def test_all_good_exits_zero_and_other_settings_are_refused(dataset, tmp_path, fake_model,
                                                            capsys):
    out = tmp_path / "out"
    run_ok([str(dataset / "pictures" / "p1.png"), "--output", str(out), *FAST])
    assert "1 inputs done" in capsys.readouterr().out
    with pytest.raises(SystemExit, match=r"^error: .*manifest.jsonl records a run with other "
                       r"settings: format 'npz' \(was 'openpose'\); use another output folder$"):
        tool.main([str(dataset / "pictures" / "p1.png"), "--output", str(out), "--format",
                   "npz", *FAST])
    with FolderLock(out), pytest.raises(SystemExit, match=r"^error: .*out is in use by another "
                                        r"extraction \(pid \d+\); wait for it to finish or "
                                        r"choose another output folder$"):
        tool.main([str(dataset / "pictures" / "p1.png"), "--output", str(out), *FAST])
    pytest.importorskip("fsspec")
    with pytest.raises(SystemExit, match=r"^error: an output URL \(memory://poses\) needs "
                       r"--manifest FILE, a local file where the run is recorded$"):
        tool.main([str(dataset / "pictures" / "p1.png"), "--output", "memory://poses", *FAST])


def test_each_format_reads_back_into_the_same_people(dataset, tmp_path, fake_model):
    inputs = [str(dataset / "clips" / "day1" / "a.mp4"), str(dataset / "pictures" / "p2.jpg")]
    pipeline = person_pipeline(argparse.Namespace(boxsize=184, scales=(1.0,)))
    capture = cv2.VideoCapture(inputs[0])
    expected = [pipeline(capture.read()[1]) for _ in range(6)]
    expected_image = pipeline(cv2.imread(inputs[1]))

    poses = {}
    for format in ("openpose", "jsonl", "npz"):
        out = tmp_path / format
        run_ok([*inputs, "--output", str(out), "--format", format, *FAST])
        corpus = load_corpus(out)
        assert sorted(corpus) == ["a.mp4", "p2.jpg"]
        poses[format] = corpus
        for name, frames in (("a.mp4", range(6)), ("p2.jpg", [0])):
            assert corpus[name].frames.tolist() == list(frames)
        exact = format != "npz"  # npz keeps part scores as float32
        for got, want in zip([*corpus["a.mp4"].people, corpus["p2.jpg"].people[0]],
                             [*expected, expected_image], strict=True):
            assert len(got) == len(want) == 1
            np.testing.assert_allclose(got.keypoints, want.keypoints, rtol=0 if exact else 1e-6)
            np.testing.assert_allclose(got.scores, want.scores, rtol=0 if exact else 1e-12)
            assert got.part_counts.tolist() == want.part_counts.tolist()
    assert sorted(files(tmp_path / "openpose")) == [
        *[f"a/a_{i:012d}_keypoints.json" for i in range(6)], "p2_keypoints.json"]
    assert sorted(files(tmp_path / "npz")) == ["a.npz", "p2.npz"]
    frame = json.loads((tmp_path / "openpose" / "a" / "a_000000000003_keypoints.json").read_text())
    assert frame["version"] == 1.3
    person = frame["people"][0]
    assert person["person_id"] == [0] and len(person["pose_keypoints_2d"]) == 18 * 3  # tracked
    image = json.loads((tmp_path / "openpose" / "p2_keypoints.json").read_text())
    assert image["people"][0]["person_id"] == [-1]  # an image is not tracked
    assert person["face_keypoints_2d"] == person["hand_left_keypoints_3d"] == []
    assert load_poses(tmp_path / "jsonl" / "a.jsonl").timestamps.tolist() == pytest.approx(
        [i / 10 for i in range(6)])
    with pytest.raises(RtposeError, match="not a .jsonl, .npz"):
        load_poses(tmp_path / "openpose" / "a" / "nothing.txt")


def test_every_max_frames_and_render(dataset, tmp_path, fake_model):
    out = tmp_path / "out"
    run_ok([str(dataset / "clips" / "day1" / "a.mp4"), str(dataset / "pictures" / "p1.png"),
            "--output", str(out), "--format", "npz", "--every", "2", "--max-frames", "2",
            "--render", *FAST])
    poses = load_poses(out / "a.npz")
    assert poses.frames.tolist() == [0, 2]
    assert poses.timestamps.tolist() == pytest.approx([0.0, 0.2])
    video = cv2.VideoCapture(str(out / "a_rendered.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 2 and video.get(cv2.CAP_PROP_FPS) == 5
    assert cv2.imread(str(out / "p1_rendered.jpg")).shape == (SIZE[1], SIZE[0], 3)


def test_a_worker_that_dies_fails_only_its_input(dataset, tmp_path, monkeypatch):
    import helpers

    monkeypatch.setattr(tool, "pipeline_from_args", helpers.crashing_pipeline)
    out = tmp_path / "out"
    command = [str(dataset / "pictures"), str(dataset / "clips" / "b.avi"), "--output",
               str(out), "--workers", "2", *FAST]
    assert run_tool(command) == tool.FAILED_EXIT
    records = read_manifest(out / "manifest.jsonl")
    assert records["p2.jpg"]["reason"] == (
        "the worker process died while reading it (exit code 3)")
    assert all(records[name]["status"] == "done" for name in ("p1.png", "b.avi"))


def driver(args: list[str], repo_root: Path, **env: str) -> subprocess.Popen:
    """extract_poses.py with the stand-in model, in its own process group."""
    environment = {**os.environ, "PYTHONPATH": str(repo_root), **env}
    return subprocess.Popen([sys.executable, "tests/extract_driver.py", *args], cwd=repo_root,
                            env=environment, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_group(group: int, timeout_s: float = 60.0) -> None:
    """Wait until no process of ``group`` is left (the workers of a killed driver exit)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"processes of group {group} still running")


def manifest_lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.parametrize("stop", ["KILL", "TERM", "Ctrl+C"])
def test_stopped_mid_run_then_resumed_ends_as_an_uninterrupted_run(tmp_path, repo_root, stop):
    """KILL: ``kill -9`` of the driver alone (its workers see it gone), TERM: ``kill`` of the
    driver, both right after it recorded its third input (the test hook); Ctrl+C: SIGINT to
    the whole process group, as a terminal sends it, once an input is recorded."""
    data = tmp_path / "data"
    data.mkdir()
    for i in range(6):
        make_video(data / f"v{i}.mp4", 5, seed=i)
    manifest = tmp_path / "out" / "manifest.jsonl"
    command = [str(data), "--output", str(tmp_path / "out"), "--workers", "2", *FAST]
    reference = [str(data), "--output", str(tmp_path / "reference"), "--workers", "2", *FAST]
    uninterrupted = driver(reference, repo_root)

    hook = {} if stop == "Ctrl+C" else {KILL_AFTER_VARIABLE: f"3:{stop}"}
    stopped = driver(command, repo_root, **hook)
    if stop == "Ctrl+C":
        while manifest_lines(manifest) < 2 and stopped.poll() is None:  # settings + 1 input
            time.sleep(0.05)
        os.killpg(stopped.pid, signal.SIGINT)
    stdout, stderr = stopped.communicate(timeout=300)
    wait_for_group(stopped.pid)
    assert stopped.returncode == (-signal.SIGKILL if stop == "KILL" else 130), stderr
    if stop != "KILL":
        assert stdout.splitlines()[-1].startswith("interrupted: ") and not stderr
    recorded = read_manifest(manifest)
    assert all(r["status"] == "done" for r in recorded.values())
    assert len(recorded) == 3 if stop != "Ctrl+C" else 1 <= len(recorded) < 6
    # The workers dropped the inputs in hand: no temporary left, and every output in place
    # is whole (an input in flight may have been finished, not yet recorded).
    left = files(tmp_path / "out")
    assert not [name for name in left if "/." in f"/{name}"]
    folders = {name.split("/")[0] for name in left}
    assert set(recorded) <= {f"{folder}.mp4" for folder in folders}
    assert len(left) == 5 * len(folders)

    resumed = driver(command, repo_root)
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert f"{6 - len(recorded)} inputs done" in stdout
    assert f"{len(recorded)} inputs already done (skipped)" in stdout
    assert manifest_lines(manifest) == 1 + 6  # nothing recorded twice: no finished input redone
    assert uninterrupted.wait(timeout=300) == 0
    assert files(tmp_path / "out") == files(tmp_path / "reference")
    assert len(files(tmp_path / "out")) == 6 * 5


def test_input_names(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/b/x.mp4", "a/y.jpg", "a/.hidden.jpg", "a/z.txt", "c.png", "d.PNG"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "list.txt").write_text("# a comment\n\na/b/x.mp4\n" + str(tmp_path / "c.png"))
    (tmp_path / "strange.bin").write_bytes(b"x")

    found = collect_inputs(["a"], cwd=tmp_path)
    assert [(i.name, i.kind) for i in found.items] == [("b/x.mp4", "video"), ("y.jpg", "image")]
    assert found.skipped == 1
    found = collect_inputs(["a/*/*.mp4", "*.png", "d.PNG"], cwd=tmp_path)
    assert [i.name for i in found.items] == ["b/x.mp4", "c.png", "d.PNG"]
    found = collect_inputs([], [tmp_path / "list.txt"], cwd="/")
    assert [i.name for i in found.items] == ["a/b/x.mp4", "c.png"]
    assert collect_inputs(["strange.bin"], cwd=tmp_path).items[0].kind == "unknown"
    assert collect_inputs(["a"], exclude=tmp_path / "a" / "b", cwd=tmp_path).items[0].name \
        == "y.jpg"

    with pytest.raises(RtposeError, match="^no such file or folder: nope$"):
        collect_inputs(["nope"], cwd=tmp_path)
    with pytest.raises(RtposeError, match=r"^no file matches \*.gif$"):
        collect_inputs(["*.gif"], cwd=tmp_path)
    (tmp_path / "a" / "y.mp4").write_bytes(b"x")
    with pytest.raises(RtposeError, match="y.jpg and y.mp4 would write the same outputs"):
        collect_inputs(["a"], cwd=tmp_path)
    (tmp_path / "e").mkdir()
    make_image(tmp_path / "e" / "c.png", 0)
    with pytest.raises(RtposeError, match="^two inputs have the same name c.png: "):
        collect_inputs([str(tmp_path / "c.png"), str(tmp_path / "e" / "c.png")],
                       cwd=tmp_path / "a")


def test_manifest_survives_a_torn_line_and_keeps_the_last_record(tmp_path):
    path = tmp_path / "manifest.jsonl"
    with Manifest(path, {"format": "jsonl", "scales": (1.0,)}) as book:
        book.record("a.mp4", status="failed", reason="bad")
        book.record("a.mp4", status="done", frames=3, output="a.jsonl")
    with open(path, "ab") as file:
        file.write(b'{"input": "b.mp4", "sta')  # killed while writing
    with Manifest(path, {"format": "jsonl", "scales": (1.0,)}) as book:
        assert book.status("a.mp4") == "done" and book.status("b.mp4") is None
        book.record("b.mp4", status="done", frames=1, output="b.jsonl")
    assert list(read_manifest(path)) == ["a.mp4", "b.mp4"]
    assert all(json.loads(line) for line in path.read_text().splitlines())
    (tmp_path / "other.jsonl").write_text("hello\n")
    with pytest.raises(RtposeError, match="is not an extraction manifest"):
        Manifest(tmp_path / "other.jsonl", {})


def test_stores_publish_whole_outputs_only(tmp_path):
    store = LocalStore(tmp_path)
    staged = store.stage("a/x.jsonl")
    assert staged.parent == tmp_path / "a" and staged.name.startswith(".tmp-")
    assert staged.name.endswith(".x.jsonl")
    staged.write_text("1\n")
    assert not store.exists("a/x.jsonl")
    store.publish(staged, "a/x.jsonl")
    assert (tmp_path / "a" / "x.jsonl").read_text() == "1\n" and not staged.exists()

    folder = store.stage("a/v", folder=True)
    (folder / "v_000000000001_keypoints.json").write_text("{}")
    store.publish(folder, "a/v")
    again = store.stage("a/v", folder=True)
    (again / "v_000000000002_keypoints.json").write_text("{}")
    store.publish(again, "a/v")  # replaces the folder whole
    assert sorted(p.name for p in (tmp_path / "a" / "v").iterdir()) == [
        "v_000000000002_keypoints.json"]

    left = store.stage("a/x.jsonl")  # a killed worker's temporary
    left.write_text("half")
    other = tmp_path / "a" / ".tmp-1-0123abcd.y.jsonl"  # another output's, maybe in progress
    other.write_text("half")
    store.clean_stale("a/x.jsonl")
    assert not left.exists() and other.exists()

    pytest.importorskip("fsspec")
    remote = FsspecStore("memory://rtpose-test/out")
    staged = remote.stage("a/v", folder=True)
    (staged / "f.json").write_text("{}")
    assert not remote.exists("a/v")
    remote.publish(staged, "a/v")
    assert remote.fs.cat("memory://rtpose-test/out/a/v/f.json") == b"{}"
    assert not staged.exists()


def test_npz_bytes_depend_only_on_the_arrays(tmp_path, monkeypatch):
    arrays = {"frames": np.arange(3), "keypoints": np.ones((2, 18, 3), np.float32)}
    write_npz(tmp_path / "a.npz", arrays)
    later = time.time() + 3600  # the second file an hour later, past the zip's 2-second clock
    monkeypatch.setattr(time, "time", lambda: later)
    write_npz(tmp_path / "b.npz", arrays)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with np.load(tmp_path / "a.npz") as data:
        assert data["keypoints"].shape == (2, 18, 3)


@pytest.mark.slow
def test_real_model_on_a_video(shared_data, mobilenet_weights, tmp_path):
    street = shared_data / "videos" / "street_5frames.mp4"
    out = tmp_path / "out"
    run_ok([str(street), "--output", str(out), "--format", "jsonl", "--boxsize", "96",
            "--model", str(mobilenet_weights), "--no-progress"])
    poses = load_poses(out / "street_5frames.jsonl")
    assert poses.frames.tolist() == [0, 1, 2, 3, 4]
    assert all(len(people) >= 1 for people in poses.people)  # a pedestrian in every frame


def test_ray_engine_on_a_local_instance(dataset, tmp_path, repo_root, fake_model):
    ray = pytest.importorskip("ray")
    tests = Path(__file__).resolve().parent
    path = os.pathsep.join([str(repo_root), str(tests)])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    try:
        command = [str(dataset), "--format", "npz", "--workers", "2", *FAST]
        assert run_tool([*command, "--output", str(tmp_path / "ray"), "--engine", "ray"]) \
            == tool.FAILED_EXIT
    finally:
        ray.shutdown()
    assert run_tool([*command, "--output", str(tmp_path / "local")]) == tool.FAILED_EXIT
    assert files(tmp_path / "ray") == files(tmp_path / "local")
    assert len(files(tmp_path / "ray")) == len(GOOD)
    ray_records = read_manifest(tmp_path / "ray" / "manifest.jsonl")
    local_records = read_manifest(tmp_path / "local" / "manifest.jsonl")
    for name in GOOD.keys() | BAD.keys():
        assert ray_records[name]["status"] == local_records[name]["status"]
        assert ray_records[name].get("reason") == local_records[name].get("reason")
    shutil.rmtree(tmp_path / "local")


def test_a_short_video_fails_beyond_the_frame_count_slack():
    from rtpose.extract.inputs import Item
    from rtpose.extract.worker import _check_frame_count

    item, warnings = Item("/x.webm", "x.webm", "video"), []
    _check_frame_count(item, 300, 299, warnings.append)  # an estimated count, one off
    assert warnings == []
    _check_frame_count(item, 300, 295, warnings.append)
    assert warnings == ["decoded 295 of the 300 frames its header states"]
    with pytest.raises(RtposeError, match="decoding stopped after 290 of its 300 frames"):
        _check_frame_count(item, 300, 290, warnings.append)
