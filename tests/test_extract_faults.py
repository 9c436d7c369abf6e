"""extract_poses.py as a careless or hostile user runs it (issue 25, the extraction side):
outputs that overlap, changed settings, outputs found among the inputs, the lock and the output
location, folders that cannot be written or read, damaged manifests and outputs, FIFOs and
stalled workers, huge images, and the one-line reasons of failed inputs.

Mounts (a read-only or a full file system: tmpfs) and dropped permissions (the tool run without
the capabilities that let root read any file) need root; those tests skip with the reason where
they cannot run."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
import test_extract
from test_extract import FAST, SIZE, driver, files, make_image, make_video, run_ok, run_tool

import rtpose.tools.extract_poses as tool
from rtpose.errors import RtposeError
from rtpose.extract import load_corpus, load_poses
from rtpose.extract.manifest import Manifest, read_manifest
from rtpose.files import FolderLock
from rtpose.stream.images import check_image_size

fake_model = test_extract.fake_model  # the fixture: the tool with a stand-in model


def run_error(args: list[str]) -> str:
    """The one-line error of a run that stops before its work (exit status 1)."""
    with pytest.raises(SystemExit) as info:
        tool.main(args)
    message = str(info.value.code)
    assert message.startswith("error: ") and "\n" not in message, message
    return message


def settings_of(manifest: Path) -> dict:
    return json.loads(manifest.read_text().splitlines()[0])["settings"]


# Group 1: one input's outputs replacing another's.

def test_a_video_beside_a_folder_of_its_name_is_refused_before_any_work(tmp_path, fake_model):
    data = tmp_path / "data"
    (data / "walk").mkdir(parents=True)
    make_video(data / "walk.mp4", 3)
    make_image(data / "walk" / "a.jpg", 50)
    make_image(data / "walk" / "b.jpg", 90)
    out = tmp_path / "out"
    message = run_error([str(data), "--output", str(out), *FAST])
    assert message == ("error: the output walk of walk.mp4 would hold the output "
                       "walk/a_keypoints.json of walk/a.jpg: rename one, or choose another "
                       "output folder (nothing was written)")
    assert files(out) == {} and not (out / "manifest.jsonl").exists()

    # In a format whose outputs do not overlap, the same inputs are fine.
    run_ok([str(data), "--output", str(tmp_path / "jsonl"), "--format", "jsonl", *FAST])
    assert sorted(load_corpus(tmp_path / "jsonl")) == ["walk.mp4", "walk/a.jpg", "walk/b.jpg"]


def test_outputs_never_replace_an_input_or_the_manifest(tmp_path, fake_model):
    data = tmp_path / "data"
    data.mkdir()
    make_image(data / "x.jpg", 50)
    make_image(data / "x_rendered.jpg", 90)  # the user's own picture, not a rendering
    before = files(data)
    message = run_error([str(data), "--output", str(data), "--render", *FAST])
    assert message.startswith("error: the output x_rendered.jpg of x.jpg is the input "
                              "x_rendered.jpg: ")
    assert files(data) == before

    make_video(tmp_path / "manifest.mp4", 2)
    message = run_error([str(tmp_path / "manifest.mp4"), "--output", str(tmp_path / "out"),
                         "--format", "jsonl", *FAST])
    assert message.startswith("error: the output manifest.jsonl of manifest.mp4 is the "
                              "manifest: ")


def test_a_folder_the_run_did_not_write_is_never_deleted(tmp_path, fake_model):
    make_video(tmp_path / "v.mp4", 3)
    out = tmp_path / "out"
    (out / "v").mkdir(parents=True)
    (out / "v" / "notes.txt").write_text("mine")
    assert run_tool([str(tmp_path / "v.mp4"), "--output", str(out), *FAST]) == tool.FAILED_EXIT
    assert (out / "v" / "notes.txt").read_text() == "mine"
    reason = read_manifest(out / "manifest.jsonl")["v.mp4"]["reason"]
    assert reason == (f"cannot write {out / 'v'}: the folder holds files this extraction did "
                      "not write (notes.txt); move them or choose another output folder")
    # A file where a folder output goes: failed the same way, the file kept.
    shutil.rmtree(out / "v")
    (out / "v").write_text("also mine")
    assert run_tool([str(tmp_path / "v.mp4"), "--output", str(out), "--retry", *FAST]) \
        == tool.FAILED_EXIT
    assert (out / "v").read_text() == "also mine"
    assert read_manifest(out / "manifest.jsonl")["v.mp4"]["reason"].endswith(
        "a file is in the way")


# Group 3: the settings that change outputs.

@pytest.mark.parametrize("changed", [["--preset", "accurate"], ["--flip"], ["--refine"],
                                     ["--thre1", "0.2"]])
def test_a_rerun_with_other_effective_parameters_is_refused(tmp_path, fake_model, changed):
    image = str(make_image(tmp_path / "p.png", 50))
    out = tmp_path / "out"
    run_ok([image, "--output", str(out), *FAST])
    settings = settings_of(out / "manifest.jsonl")
    assert settings["grouping"]["thre1"] == 0.1 and settings["inference"]["flip"] is False
    assert settings["inference"]["boxsize"] == 184
    message = run_error([image, "--output", str(out), *changed, *FAST])
    assert "records a run with other settings: " in message and "use another output" in message


def test_the_config_file_is_recorded_by_what_it_says(tmp_path, fake_model, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./config
    image = str(make_image(tmp_path / "p.png", 50))
    for name, thre1 in (("a.cfg", 0.2), ("b.cfg", 0.2), ("c.cfg", 0.3)):
        (tmp_path / name).write_text(f"[param]\nthre1 = {thre1}\n")
    out = str(tmp_path / "out")
    run_ok([image, "--output", out, "--config", "a.cfg", *FAST])
    assert settings_of(tmp_path / "out" / "manifest.jsonl")["grouping"]["thre1"] == 0.2
    run_ok([image, "--output", out, "--config", "b.cfg", *FAST])  # another path, same content
    message = run_error([image, "--output", out, "--config", "c.cfg", *FAST])
    assert "grouping {'thre1': 0.3, " in message and "(was {'thre1': 0.2, " in message


def failing_pipeline(args, threads=None):
    raise RtposeError(f"weights file not found: {args.model}")


def test_a_run_that_fails_before_any_input_locks_in_nothing(tmp_path, monkeypatch, fake_model):
    image = str(make_image(tmp_path / "p.png", 50))
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        patch.setattr(tool, "pipeline_from_args", failing_pipeline)
        message = run_error([image, "--output", str(out), *FAST[:2], "--model", "typo.h5",
                             "--no-progress"])
    assert message.startswith("error: cannot load the model: weights file not found: ")
    assert not (out / "manifest.jsonl").exists() or settings_of_or_none(out) is None
    run_ok([image, "--output", str(out), *FAST])  # another --model: accepted
    assert settings_of(out / "manifest.jsonl")["model"].endswith("unused.weights.h5")
    # Once an input is recorded, the settings hold.
    message = run_error([image, "--output", str(out), *FAST[:2], "--model", "typo.h5"])
    assert "model" in message and "typo.h5" in message


def settings_of_or_none(out: Path) -> dict | None:
    text = (out / "manifest.jsonl").read_text()
    return json.loads(text.splitlines()[0])["settings"] if text.strip() else None


# Group 4: outputs and the manifest are never inputs.

def test_a_rerun_into_the_input_folder_never_reads_its_own_outputs(tmp_path, fake_model,
                                                                   capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    make_image(folder / "x.jpg", 50)
    make_video(folder / "v.mp4", 2)
    command = [str(folder), "--output", str(folder), "--render", "--format", "jsonl", *FAST]
    run_ok(command)
    written = files(folder)
    assert sorted(written) == ["v.jsonl", "v.mp4", "v_rendered.mp4", "x.jpg", "x.jsonl",
                               "x_rendered.jpg"]
    capsys.readouterr()
    for _ in range(2):
        run_ok(command)
        assert "2 inputs (1 image, 1 video)" in capsys.readouterr().out
        assert files(folder) == written
    # Named one by one (as a shell's in/* names them), outputs and manifest included.
    run_ok([*map(str, sorted(folder.iterdir())), "--output", str(folder), "--render",
            "--format", "jsonl", *FAST])
    assert "2 inputs (1 image, 1 video)" in capsys.readouterr().out
    assert sorted(read_manifest(folder / "manifest.jsonl")) == ["v.mp4", "x.jpg"]


def test_a_glob_that_matches_the_output_folder_does_not_walk_it(tmp_path, fake_model, capsys,
                                                                monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    make_image(tmp_path / "data" / "a.jpg", 50)
    for pattern in ("data/*", "data/**/*.jpg"):
        run_ok([pattern, "--output", "data/out", "--render", *FAST])
        assert "1 inputs (1 image)" in capsys.readouterr().out
    assert sorted(files(tmp_path / "data" / "out")) == ["a_keypoints.json", "a_rendered.jpg"]


# Group 5: the lock and the output location.

def test_the_output_folder_is_locked_whatever_the_manifest(tmp_path, fake_model):
    image = str(make_image(tmp_path / "p.png", 50))
    out = tmp_path / "out"
    with FolderLock(out):  # another run's, into the same folder with its own --manifest
        message = run_error([image, "--output", str(out), "--manifest",
                             str(tmp_path / "m2.jsonl"), *FAST])
    assert message.startswith(f"error: {out} is in use by another extraction (pid ")
    with FolderLock(tmp_path / "elsewhere"):  # the manifest's folder is locked too
        message = run_error([image, "--output", str(out), "--manifest",
                             str(tmp_path / "elsewhere" / "m.jsonl"), *FAST])
    assert "elsewhere is in use by another extraction" in message


def test_file_urls_are_paths_and_memory_is_refused(tmp_path, fake_model, monkeypatch):
    monkeypatch.chdir(tmp_path)
    image = str(make_image(tmp_path / "p.png", 50))
    run_ok([image, "--output", f"file://{tmp_path}/out", *FAST])
    assert sorted(files(tmp_path / "out")) == ["p_keypoints.json"]
    assert not (tmp_path / "file:").exists()
    run_ok([image, "--output", f"file://localhost{tmp_path}/out", *FAST])  # same, done
    message = run_error([image, "--output", "file://server/out", *FAST])
    assert message == "error: file://server/out: a file URL must name this machine (file:///path)"
    pytest.importorskip("fsspec", reason="the ray extra (fsspec) is not installed")
    message = run_error([image, "--output", "memory://poses", "--manifest",
                         str(tmp_path / "m.jsonl"), *FAST])
    assert message.startswith("error: cannot write to memory://poses: it lives in one "
                              "process and the workers cannot share it")


# Group 6: an output folder that is a file, read-only or on a full disk.

@contextmanager
def tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at ``where`` for the block; skips the test where mounting is not
    allowed (not root, or no CAP_SYS_ADMIN)."""
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or 'not root'}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def fill(folder: Path) -> None:
    """Fill ``folder``'s file system to the last byte."""
    with open(folder / "filler", "wb", buffering=0) as file:
        try:
            while True:
                file.write(b"\0" * 4096)
        except OSError:
            pass


def test_an_output_folder_that_is_a_file_is_one_line(tmp_path, fake_model):
    image = str(make_image(tmp_path / "p.png", 50))
    (tmp_path / "taken").write_text("a file")
    message = run_error([image, "--output", str(tmp_path / "taken"), *FAST])
    assert message == (f"error: cannot write into {tmp_path / 'taken'} for the extraction: a "
                       "file is there, not a folder; choose another output folder")
    message = run_error([image, "--output", str(tmp_path / "taken" / "sub"), *FAST])
    assert message.endswith("a file is in its path, not a folder; choose another output folder")
    with pytest.raises(RtposeError, match="^cannot write into .*taken for the training: a file "
                       "is there, not a folder; choose another --weights-dir$"):
        with FolderLock(tmp_path / "taken", "training", "another --weights-dir"):
            pass


def test_a_weights_dir_that_is_a_file_is_one_line_in_training(tmp_path, capsys):
    from rtpose.tools import train_pose

    (tmp_path / "weights").write_text("a file")
    with pytest.raises(SystemExit) as info:
        train_pose.main(["--weights-dir", str(tmp_path / "weights")])
    assert info.value.code == (f"error: cannot write into {tmp_path / 'weights'} for the "
                               "training: a file is there, not a folder; choose another "
                               "--weights-dir")
    assert (tmp_path / "weights").read_text() == "a file"


def test_a_read_only_or_full_output_folder_is_one_line(tmp_path, fake_model):
    make_video(tmp_path / "v.mp4", 6)
    with tmpfs(tmp_path / "ro", "ro,size=64k") as read_only:
        message = run_error([str(tmp_path / "v.mp4"), "--output", str(read_only / "out"),
                             *FAST])
        assert message.endswith("read-only file system; choose another output folder")
        with pytest.raises(RtposeError, match="read-only file system; choose another "
                           "--weights-dir$"):
            with FolderLock(read_only / "weights", "training", "another --weights-dir"):
                pass
    with tmpfs(tmp_path / "full", "size=64k") as full:
        fill(full)
        message = run_error([str(tmp_path / "v.mp4"), "--output", str(full / "out"), *FAST])
        assert message.endswith("no space left on device; choose another output folder")
        # The lock taken (its file there before the disk filled), the input's writes fail:
        # one plain line in the manifest, not a raw OSError.
        (full / "filler").unlink()
        (full / "out").mkdir(exist_ok=True)
        (full / "out" / ".lock").write_text("1234567\n")
        fill(full)
        manifest = tmp_path / "manifest.jsonl"
        assert run_tool([str(tmp_path / "v.mp4"), "--output", str(full / "out"), "--format",
                         "jsonl", "--manifest", str(manifest), *FAST]) == tool.FAILED_EXIT
    reason = read_manifest(manifest)["v.mp4"]["reason"]
    assert reason == f"cannot write {full / 'out' / 'v.jsonl'}: no space left on device"


# Groups 7 and 13: folders and files that cannot be read, and what a failed input says.

def without_permissions(args: list[str], repo_root: Path) -> subprocess.CompletedProcess:
    """extract_poses.py (stand-in model) as root without the capabilities that override file
    permissions, so that a mode of 000 binds; skips where they cannot be dropped."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("dropping file permissions needs root and setpriv (util-linux)")
    environment = {**os.environ, "PYTHONPATH": str(repo_root)}
    return subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--",
                           sys.executable, "tests/extract_driver.py", *args], cwd=repo_root,
                          env=environment, capture_output=True, text=True, timeout=120)


def test_an_unreadable_folder_is_an_error_not_a_skip(tmp_path, repo_root):
    data = tmp_path / "data"
    (data / "ok").mkdir(parents=True)
    (data / "locked").mkdir()
    make_image(data / "ok" / "a.jpg", 50)
    make_image(data / "locked" / "b.jpg", 90)
    (data / "locked").chmod(0o000)
    out = str(tmp_path / "out")
    for named in (data, data / "locked"):  # a sub-folder, or the folder named
        done = without_permissions([str(named), "--output", out, *FAST], repo_root)
        assert done.returncode == 1, done.stdout + done.stderr
        assert done.stderr.strip() == (f"error: cannot read folder {data / 'locked'}: "
                                       "permission denied; make it readable, or move it out "
                                       "of the inputs")


def test_unreadable_files_and_fifos_say_what_is_wrong(tmp_path, repo_root):
    data = tmp_path / "data"
    data.mkdir()
    make_video(data / "secret.mp4", 2)
    make_image(data / "locked.jpg", 50)
    os.mkfifo(data / "pipe.mp4")
    os.mkfifo(tmp_path / "fifo.jpg")  # named on the command line
    make_image(data / "fine.png", 90)
    for name in ("secret.mp4", "locked.jpg"):
        (data / name).chmod(0o000)
    out = tmp_path / "out"
    done = without_permissions([str(data), str(tmp_path / "fifo.jpg"), "--output", str(out),
                                *FAST], repo_root)
    assert done.returncode == tool.FAILED_EXIT, done.stdout + done.stderr
    records = read_manifest(out / "manifest.jsonl")
    assert records["fine.png"]["status"] == "done"
    assert {name: records[name]["reason"] for name in records if name != "fine.png"} == {
        "secret.mp4": f"cannot read video {data / 'secret.mp4'}: permission denied",
        "locked.jpg": f"cannot read image {data / 'locked.jpg'}: permission denied",
        "pipe.mp4": f"cannot read video {data / 'pipe.mp4'}: not a regular file (a FIFO)",
        "fifo.jpg": f"cannot read image {tmp_path / 'fifo.jpg'}: not a regular file (a FIFO)",
    }


# Group 9: damaged manifests and outputs.

@pytest.fixture
def corpus(tmp_path, fake_model) -> Path:
    """An npz corpus of three images."""
    for i in range(3):
        make_image(tmp_path / f"p{i}.png", 40 * i)
    out = tmp_path / "out"
    run_ok([*(str(tmp_path / f"p{i}.png") for i in range(3)), "--output", str(out),
            "--format", "npz", *FAST])
    return out


@pytest.mark.parametrize("damage", ["status", "output"])
def test_a_damaged_manifest_line_names_the_file_or_is_skipped(corpus, damage):
    manifest = corpus / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    record = json.loads(lines[2])
    del record[damage]
    manifest.write_text("\n".join([*lines[:2], json.dumps(record), *lines[3:]]) + "\n")
    with pytest.raises(RtposeError, match=rf"^{manifest} is damaged: line 3 "):
        load_corpus(corpus)
    with pytest.warns(UserWarning, match="line 3 skipped"):
        partial = load_corpus(corpus, strict=False)
    assert sorted(partial) == sorted({"p0.png", "p1.png", "p2.png"} - {record["input"]})
    message = run_error([str(corpus.parent / "p0.png"), "--output", str(corpus), "--format",
                         "npz", *FAST])
    assert message.startswith(f"error: {manifest} is damaged: line 3 ")


def test_a_damaged_or_missing_npz_names_the_file_or_is_skipped(corpus):
    whole = (corpus / "p0.npz").read_bytes()
    (corpus / "p0.npz").write_bytes(whole[:len(whole) // 2])  # truncated
    corrupted = bytearray((corpus / "p1.npz").read_bytes())
    corrupted[40:80] = bytes(40)  # inside the first member's compressed data
    (corpus / "p1.npz").write_bytes(bytes(corrupted))
    for name in ("p0.npz", "p1.npz"):
        with pytest.raises(RtposeError, match=rf"^cannot read poses {corpus / name}: damaged"):
            load_poses(corpus / name)
    with pytest.raises(RtposeError, match="p0.npz: damaged"):
        load_corpus(corpus)
    with pytest.warns(UserWarning) as warned:
        partial = load_corpus(corpus, strict=False)
    assert sorted(partial) == ["p2.png"] and len(partial["p2.png"]) == 1
    assert len(warned) == 2
    (corpus / "p2.npz").unlink()
    with pytest.warns(UserWarning) as warned:
        assert load_corpus(corpus, strict=False) == {}
    assert "p2.png left out: " in str(warned[-1].message)
    assert str(warned[-1].message).endswith("p2.npz: no such file")


def test_npz_arrays_that_disagree_are_refused(tmp_path):
    from rtpose.extract.writers import write_npz

    write_npz(tmp_path / "x.npz", {
        "frames": np.arange(2), "timestamps": np.zeros(2), "counts": np.array([1, 5]),
        "keypoints": np.zeros((1, 18, 3), np.float32), "scores": np.zeros(1),
        "part_counts": np.zeros(1, np.int64)})
    with pytest.raises(RtposeError, match="its arrays disagree in length"):
        load_poses(tmp_path / "x.npz")


def test_manifest_settings_wait_for_the_first_record(tmp_path):
    path = tmp_path / "manifest.jsonl"
    with Manifest(path, {"format": "jsonl"}):
        pass
    with Manifest(path, {"format": "npz"}) as book:  # nothing recorded: nothing to keep to
        book.record("a.mp4", status="failed", reason="bad")
    with pytest.raises(RtposeError, match="other settings: format 'jsonl' \\(was 'npz'\\)"):
        Manifest(path, {"format": "jsonl"})


# Group 10: nothing waits for ever.

def test_a_list_file_that_is_a_fifo_is_refused_at_once(tmp_path, repo_root):
    os.mkfifo(tmp_path / "list.txt")
    (tmp_path / "folder.txt").mkdir()
    for name, what in (("list.txt", "not a regular file (a FIFO or a device)"),
                       ("folder.txt", "a folder")):
        run = driver(["--list", str(tmp_path / name), "--output", str(tmp_path / "out"),
                      *FAST], repo_root)
        stdout, stderr = run.communicate(timeout=60)
        assert run.returncode == 1
        assert stderr == f"error: cannot read list file {tmp_path / name}: {what}\n"


def test_a_stalled_worker_fails_its_input_and_is_replaced(tmp_path, monkeypatch):
    import helpers

    monkeypatch.setattr(tool, "pipeline_from_args", helpers.stalling_pipeline)
    data = tmp_path / "data"
    data.mkdir()
    red = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    red[..., 2] = 255
    cv2.imwrite(str(data / "stuck.png"), red)  # stalls before its first frame is done
    writer = cv2.VideoWriter(str(data / "late.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, SIZE)
    for i in range(5):  # stalls at its fourth frame
        frame = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
        frame[..., 2 if i == 3 else 1] = 255 if i == 3 else 40 * i
        writer.write(frame)
    writer.release()
    make_image(data / "still.png", 50)
    make_video(data / "fine.mp4", 3)
    out = tmp_path / "out"
    assert run_tool([str(data), "--output", str(out), "--workers", "2", "--stall-timeout",
                     "1.5", *FAST]) == tool.FAILED_EXIT
    records = read_manifest(out / "manifest.jsonl")
    assert {name: r["status"] for name, r in records.items()} == {
        "stuck.png": "failed", "late.avi": "failed", "still.png": "done", "fine.mp4": "done"}
    for name in ("stuck.png", "late.avi"):
        assert records[name]["reason"] == ("no progress for 1.5 s (a stalled read?): its "
                                           "worker was stopped and replaced")
    assert sorted(files(out)) == ["fine/fine_000000000000_keypoints.json",
                                  "fine/fine_000000000001_keypoints.json",
                                  "fine/fine_000000000002_keypoints.json",
                                  "still_keypoints.json"]


# Group 11: the decoded size, checked from the header.

def png_header_only(width: int, height: int) -> bytes:
    """A 1-bit grey PNG of ``width`` x ``height`` pixels, all black: small on disk, huge
    decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    row = b"\0" * (1 + (width + 7) // 8)
    squeeze = zlib.compressobj(9)
    pixels = b"".join(squeeze.compress(row) for _ in range(height)) + squeeze.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0,
                                                              0, 0, 0))
            + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))


def test_a_huge_image_fails_before_it_is_decoded(tmp_path, fake_model):
    data = tmp_path / "data"
    data.mkdir()
    (data / "huge.png").write_bytes(png_header_only(30000, 30000))
    assert (data / "huge.png").stat().st_size < 2_000_000
    make_image(data / "small.jpg", 50)
    out = tmp_path / "out"
    assert run_tool([str(data), "--output", str(out), *FAST]) == tool.FAILED_EXIT
    records = read_manifest(out / "manifest.jsonl")
    assert records["small.jpg"]["status"] == "done"
    assert records["huge.png"]["reason"] == (
        f"cannot read image {data / 'huge.png'}: 30000 x 30000 is 900,000,000 pixels, more "
        "than the limit of 100,000,000 (--max-image-pixels)")


def test_max_image_pixels_reaches_every_worker_for_images_and_videos(tmp_path, fake_model):
    make_image(tmp_path / "p.png", 50)
    make_video(tmp_path / "v.mp4", 2)
    make_image(tmp_path / "q.jpg", 90)
    out = tmp_path / "out"
    limit = SIZE[0] * SIZE[1] - 1
    assert run_tool([str(tmp_path / name) for name in ("p.png", "v.mp4", "q.jpg")]
                    + ["--output", str(out), "--workers", "2", "--max-image-pixels",
                       str(limit), *FAST]) == tool.FAILED_EXIT
    records = read_manifest(out / "manifest.jsonl")
    assert all("more than the limit of 19,199" in r["reason"] for r in records.values())
    assert records["v.mp4"]["reason"].endswith("its 160 x 120 frames are more than the limit "
                                               "of 19,199 pixels (--max-image-pixels)")
    # The limit does not change outputs: not a setting, a larger one is accepted.
    run_ok([str(tmp_path / "p.png"), "--output", str(out), "--retry", "--max-image-pixels",
            "19200", *FAST])
    with pytest.raises(RtposeError, match="19,200 pixels"):
        check_image_size((tmp_path / "p.png").read_bytes(), limit)
    check_image_size(b"not an image", 1)  # left to the decoder
