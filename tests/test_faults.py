"""Faults and bad inputs (issue 15): each case ends with one clear line and a non-zero exit, or
the right result, and no interruption loses an output or leaves half of one looking complete.

One section per area: training; weights and config files; data (generators, dataset server and
client); COCO evaluation; export; inference. Interruptions strike at the exact moment of a save
through a hook (a patched writer that sends the signal to its own process), never after a
sleep. Case numbers are those of issue 15.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest

from rtpose.errors import RtposeError, WeightsError
from rtpose.files import FolderLock, atomic_path, remove_stale_temporaries

CROP = 64  # crop of the training tests: small, so that an epoch takes a second


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def python(repo_root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``python ARGS`` from the repository root, as a user would."""
    return subprocess.run([sys.executable, *args], cwd=repo_root, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(repo_root)})


def one_line_error(stderr: str, start: str = "error: ") -> str:
    """The last line of ``stderr``, checked to be the one-line message (no traceback)."""
    assert "Traceback" not in stderr, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(start), stderr[-3000:]
    return last


def exit_message(excinfo: pytest.ExceptionInfo[SystemExit]) -> str:
    message = str(excinfo.value.code)
    assert message.startswith("error: ") and "\n" not in message, message
    return message


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".tmp-")
                  or p.name.endswith(".partial"))


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---------------------------------------------------------------------------------------------
# Outputs: the shared writer (rtpose.files)
# ---------------------------------------------------------------------------------------------

def test_atomic_path_keeps_the_old_file_on_any_exception(tmp_path: Path):
    out = tmp_path / "a.txt"
    out.write_text("old")
    for error in (KeyboardInterrupt, OSError):
        with pytest.raises(error), atomic_path(out) as tmp:
            tmp.write_text("half")
            raise error
        assert out.read_text() == "old" and temporaries(tmp_path) == []
    with atomic_path(out) as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".a.txt")
        tmp.write_text("new")
    assert out.read_text() == "new" and temporaries(tmp_path) == []


def test_only_temporaries_of_dead_processes_are_removed(tmp_path: Path):
    dead = tmp_path / f".tmp-{dead_pid()}-0123abcd.last.keras"
    mine = tmp_path / f".tmp-{os.getpid()}-0123abcd.last.keras"
    folder = tmp_path / f".tmp-{dead_pid()}-89abcdef.e.onnx"
    other = tmp_path / ".tmp-notes.txt"
    for path in (dead, mine, other):
        path.write_text("x")
    folder.mkdir()
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted([dead, folder])
    assert mine.exists() and other.exists() and not dead.exists() and not folder.exists()


# ---------------------------------------------------------------------------------------------
# Training (cases 1 and 4): checkpoints, interruptions, lock, NaN, flags
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def servers(repo_root: Path, shared_data: Path):
    """Training and validation ``host:port`` on the 3 original samples at crop ``CROP``."""
    dataset = shared_data / "original_formats" / "train_dataset_first3.h5"
    procs, addresses = [], []
    for flags in (("--seed", "7"), ("--no-augment",)):
        port = free_port()
        procs.append(subprocess.Popen(
            [sys.executable, "training/dataset_server.py", str(dataset), str(port),
             "--crop-size", str(CROP), "--quiet", *flags],
            cwd=repo_root, env={**os.environ, "PYTHONPATH": str(repo_root)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        addresses.append(f"127.0.0.1:{port}")
    yield addresses
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(timeout=30)


def train_args(servers: list[str], weights_dir: Path, epochs: int) -> list[str]:
    """A one-step-per-epoch MobileNet-thin run (one stage) into ``weights_dir``."""
    return ["--arch", "mobilenet_thin", "--from-scratch", "--stages", "1",
            "--crop-size", str(CROP), "--batch-size", "1", "--steps-per-epoch", "1",
            "--val-steps", "1", "--base-lr", "1e-6", "--epochs", str(epochs),
            "--train-servers", servers[0], "--val-servers", servers[1],
            "--weights-dir", str(weights_dir), "--logs-dir", str(weights_dir.parent / "logs")]


def eager_fit():
    """``Model.fit`` that runs eagerly: tracing the training step would take most of these
    tests' time, and how a step is computed is not what they test."""
    fit = keras.Model.fit

    def patched(self, *args, **kwargs):
        self.run_eagerly = True
        return fit(self, *args, **kwargs)

    return patched


@pytest.fixture(scope="module")
def eager():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keras.Model, "fit", eager_fit())
        yield


@pytest.fixture(scope="module")
def epoch_one(servers: list[str], eager, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights directory after one completed epoch: the good state that faults must keep."""
    from rtpose.models import get_architecture
    from rtpose.tools import train_pose as cli
    from rtpose.train.trainer import load_checkpoint

    weights_dir = tmp_path_factory.mktemp("epoch_one") / "w"
    cli.main(train_args(servers, weights_dir, epochs=1))
    model = load_checkpoint(weights_dir / "last.keras", get_architecture("mobilenet_thin"), 1)
    assert int(model.optimizer.iterations) == 1  # the resume point: the optimiser after a step
    return weights_dir


@pytest.fixture
def resumable(epoch_one: Path, tmp_path: Path) -> Path:
    """A copy of ``epoch_one`` for one test to resume (and damage)."""
    weights_dir = tmp_path / "w"
    shutil.copytree(epoch_one, weights_dir)
    return weights_dir


def snapshot(weights_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in weights_dir.iterdir() if p.name != ".lock"}


EPOCH_ONE_STATE = ("last.keras", "training.csv", "losses.png", "weights.0001.weights.h5")


def assert_epoch_one_intact(weights_dir: Path, before: dict[str, bytes]) -> None:
    """Epoch 1's state (its ``last.keras`` loads, see ``epoch_one``) is byte for byte there,
    and no temporary is left."""
    after = snapshot(weights_dir)
    assert {k: after.get(k) for k in EPOCH_ONE_STATE} == {k: before[k] for k in EPOCH_ONE_STATE}
    assert temporaries(weights_dir) == []


SAVE_THEN_SIGNAL = """
import os, signal, sys

import cv2
import keras

from rtpose.tools import train_pose as cli

signum = getattr(signal, sys.argv[1])
save, fit = keras.Model.save, keras.Model.fit


def eager_fit(self, *args, **kwargs):  # as in the tests, see eager_fit
    self.run_eagerly = True
    return fit(self, *args, **kwargs)


def save_then_signal(self, path, *args, **kwargs):  # epoch 2's last.keras, half written
    save(self, path, *args, **kwargs)
    os.truncate(path, os.path.getsize(path) // 2)
    os.kill(os.getpid(), signum)


keras.Model.save, keras.Model.fit = save_then_signal, eager_fit
cli.main(sys.argv[2:])
"""


def save_then_signal(signum: int, calls: list[Path]):
    """A ``keras.Model.save`` that saves, cuts the file in half and sends ``signum`` to its own
    process: an interruption halfway through writing ``last.keras``."""
    save = keras.Model.save

    def patched(self, path, *args, **kwargs):
        save(self, path, *args, **kwargs)
        calls.append(Path(path))
        os.truncate(path, os.path.getsize(path) // 2)
        os.kill(os.getpid(), signum)

    return patched


def test_sigterm_during_the_save_keeps_last_checkpoint(
    servers: list[str], resumable: Path, monkeypatch: pytest.MonkeyPatch, capsys,
):
    """Case 1: SIGTERM (``kill``, ``timeout``, ``docker stop``) while epoch 2's ``last.keras``
    is half written: one line, exit 130, epoch 1's checkpoint intact, no temporary left."""
    from rtpose.tools import train_pose as cli

    before = snapshot(resumable)
    calls: list[Path] = []
    monkeypatch.setattr(keras.Model, "save", save_then_signal(signal.SIGTERM, calls))
    with pytest.raises(SystemExit) as excinfo:
        cli.main(train_args(servers, resumable, epochs=2))
    assert excinfo.value.code == 130
    assert len(calls) == 1 and calls[0].parent == resumable
    assert calls[0].name.endswith(".last.keras")  # a temporary beside it, not last.keras itself
    assert one_line_error(capsys.readouterr().err, "interrupted: ") == (
        f"interrupted: {resumable / 'last.keras'} holds the last completed epoch; run the same "
        "command to resume")
    assert_epoch_one_intact(resumable, before)


def test_ctrl_c_during_the_save_keeps_last_checkpoint(resumable: Path,
                                                      monkeypatch: pytest.MonkeyPatch):
    """Case 1: Ctrl+C (a real SIGINT) while the checkpoint callback writes ``last.keras``: the
    interrupt goes on (the command line turns it into the line above), the old file stays."""
    from rtpose.models import get_architecture
    from rtpose.train import callbacks as cb

    before = snapshot(resumable)
    architecture = get_architecture("mobilenet_thin")
    model = architecture.build(training=True, stages=1, input_shape=(CROP, CROP, 3))
    checkpoints = cb.Checkpoints(resumable, architecture.build(stages=1))
    checkpoints.set_model(model)
    calls: list[Path] = []
    monkeypatch.setattr(keras.Model, "save", save_then_signal(signal.SIGINT, calls))
    with pytest.raises(KeyboardInterrupt):
        checkpoints.on_epoch_end(1, {"loss": 1.0, "val_loss": 1.0})
    assert len(calls) == 1
    assert_epoch_one_intact(resumable, before)


def test_kill_9_during_the_save_keeps_last_checkpoint(
    repo_root: Path, servers: list[str], resumable: Path, capsys,
):
    """Case 1: ``kill -9`` while ``last.keras`` is half written leaves it intact; the next run
    removes the dead run's temporary."""
    from rtpose.tools import train_pose as cli

    before = snapshot(resumable)
    done = python(repo_root, "-c", SAVE_THEN_SIGNAL, "SIGKILL",
                  *train_args(servers, resumable, epochs=2))
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    leftovers = temporaries(resumable)
    assert len(leftovers) == 1 and leftovers[0].endswith(".last.keras")
    cli.main(train_args(servers, resumable, epochs=1))  # one epoch recorded: nothing to train
    assert f"removed {resumable / leftovers[0]}" in capsys.readouterr().out
    assert_epoch_one_intact(resumable, before)


def test_nan_loss_stops_training_and_keeps_last_checkpoint(
    servers: list[str], resumable: Path, monkeypatch: pytest.MonkeyPatch,
):
    """Case 4: a training server starts sending NaN labels in epoch 2: the run stops at its
    first step with one line and saves nothing of that epoch."""
    from rtpose.tools import train_pose as cli
    from rtpose.train import trainer

    before = snapshot(resumable)
    receive = trainer.BatchStream._next

    def nan_labels(self):
        inputs, labels = receive(self)
        if self.servers == [servers[0]]:
            labels = tuple(np.full_like(label, np.nan) for label in labels)
        return inputs, labels

    monkeypatch.setattr(trainer.BatchStream, "_next", nan_labels)
    with pytest.raises(SystemExit) as excinfo:
        cli.main(train_args(servers, resumable, epochs=2))
    assert exit_message(excinfo) == (
        f"error: the training loss became nan at iteration 1 of epoch 2; stopped without saving "
        f"that epoch, {resumable / 'last.keras'} still holds the last good epoch (a lower "
        "--base-lr, or a look at the data, may help)")
    assert snapshot(resumable) == before  # not even the epoch's weights
    assert_epoch_one_intact(resumable, before)


def test_nan_weights_are_never_saved(tmp_path: Path):
    """Case 4: weights that became NaN with a finite last loss stop the run at the epoch's end,
    before any file is written."""
    from rtpose.models import get_architecture
    from rtpose.train import callbacks as cb

    architecture = get_architecture("mobilenet_thin")
    model = architecture.build(training=True, stages=1, input_shape=(CROP, CROP, 3))
    kernel = model.get_layer("MobilenetV1_Conv2d_0").kernel
    kernel.assign(np.where(np.arange(kernel.shape[-1]) == 3, np.inf, kernel.numpy()))
    checkpoints = cb.Checkpoints(tmp_path, architecture.build(stages=1))
    checkpoints.set_model(model)
    with pytest.raises(cb.TrainingDiverged, match="weights became NaN or infinite in epoch 5 "
                       r"\(1 of \d+ arrays, the first MobilenetV1_Conv2d_0/kernel\)"):
        checkpoints.on_epoch_end(4, {"loss": 1.0, "val_loss": 1.0})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("flags", "message"), [
    (["--base-lr", "nan"], "--base-lr must be a positive number, got nan"),
    (["--base-lr=-1e-4"], "--base-lr must be a positive number, got -0.0001"),
    (["--base-lr", "inf"], "--base-lr must be a positive number, got inf"),
    (["--momentum", "1.5"], "--momentum must be in [0, 1), got 1.5"),
    (["--weight-decay", "nan"], "--weight-decay must be a number >= 0, got nan"),
    (["--timeout=-1"], "--timeout must be a positive number, got -1.0"),
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--epochs", "0"], "--epochs must be at least 1, got 0"),
    (["--crop-size", "100"], "--crop-size must be a multiple of 8, got 100"),
])
def test_bad_training_flags_are_rejected_up_front(flags: list[str], message: str, tmp_path):
    """Case 4: a NaN, infinite or negative rate (and other settings that cannot train) is one
    line before anything starts."""
    from rtpose.tools import train_pose as cli

    with pytest.raises(SystemExit) as excinfo:
        cli.main(["--weights-dir", str(tmp_path / "w"), *flags])
    assert exit_message(excinfo) == f"error: {message}"
    assert not (tmp_path / "w").exists()


def test_base_lr_nan_from_the_command_line(repo_root: Path, tmp_path: Path):
    done = python(repo_root, "training/train_pose.py", "--base-lr", "nan",
                  "--weights-dir", str(tmp_path / "w"))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: --base-lr must be a positive number, got nan"]


@pytest.mark.parametrize("damage", ["empty", "truncated", "corrupt"])
def test_damaged_last_keras_is_one_line_with_a_way_on(damage: str, resumable: Path):
    """Case 1: an empty (kill -9 of the old in-place save), truncated (Ctrl+C) or corrupted
    ``last.keras`` is one line before any server is contacted, saying what to do besides
    --no-resume."""
    from rtpose.tools import train_pose as cli

    checkpoint = resumable / "last.keras"
    data = bytearray(checkpoint.read_bytes())
    if damage == "empty":
        data = bytearray()
    elif damage == "truncated":
        data = data[: len(data) // 2]
    else:  # the bytes of the stored files change, the archive's directory does not
        data[len(data) // 3: len(data) // 3 + 64] = bytes(64)
    checkpoint.write_bytes(bytes(data))
    reason = {"empty": "0 bytes", "truncated": "not a complete .keras archive",
              "corrupt": "its member .* fails its check"}[damage]
    port = free_port()  # nothing listens there: the check comes first
    servers = [f"127.0.0.1:{port}"] * 2
    with pytest.raises(SystemExit) as excinfo:
        cli.main(train_args(servers, resumable, epochs=2))
    assert re.fullmatch(
        f"error: {re.escape(str(checkpoint))} is damaged \\({reason}\\), so training cannot "
        f"resume from it; move it away and run again with --init-weights "
        f"{re.escape(str(resumable / 'weights.0001.weights.h5'))} to go on from those weights "
        r"\(with a new optimiser state and log\), or run again with --no-resume to start over",
        exit_message(excinfo)), exit_message(excinfo)


LOCK_HOLDER = """
import sys
from rtpose.files import FolderLock

with FolderLock(sys.argv[1], "training"):
    print("locked", flush=True)
    sys.stdin.read()
"""


def test_second_training_in_one_weights_dir_is_refused(repo_root: Path, tmp_path: Path):
    """Case 1: another process holds the weights directory: one line naming it."""
    from rtpose.tools import train_pose as cli

    weights_dir = tmp_path / "w"
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(weights_dir)],
                              cwd=repo_root, env={**os.environ, "PYTHONPATH": str(repo_root)},
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(SystemExit) as excinfo:
            cli.main(train_args([f"127.0.0.1:{free_port()}"] * 2, weights_dir, epochs=1))
        assert exit_message(excinfo) == (
            f"error: {weights_dir} is in use by another training (pid {holder.pid}); wait for "
            "it to finish or choose another --weights-dir")
    finally:
        holder.communicate("", timeout=30)
    with FolderLock(weights_dir):  # the holder's exit released it
        pass


# ---------------------------------------------------------------------------------------------
# Weights and config files (cases 4, 12, 13)
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def random_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Weights of a randomly initialised MobileNet-thin (finite, loadable)."""
    from rtpose.models import get_architecture

    path = tmp_path_factory.mktemp("random") / "random.weights.h5"
    get_architecture("mobilenet_thin").build().save_weights(path)
    return path


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


# ---------------------------------------------------------------------------------------------
# Data: generators, dataset server and client (cases 3a, 8, 15, 17)
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_split(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two coco_mini training images with people, their annotations and an images folder."""
    root = tmp_path_factory.mktemp("split")
    coco_mini = shared_data / "coco_mini"
    data = json.loads((coco_mini / "annotations" / "person_keypoints_train2017.json").read_text())
    keep = {535506, 463557}
    data["images"] = [i for i in data["images"] if i["id"] in keep]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in keep]
    (root / "images").mkdir()
    for image in data["images"]:
        shutil.copy(coco_mini / "train2017" / image["file_name"], root / "images")
    (root / "annotations.json").write_text(json.dumps(data))
    return {"annotations": root / "annotations.json", "images": root / "images"}


STOP_AT_SECOND = """
import os, signal, sys
import importlib

module, name, tool = sys.argv[1:4]
target = importlib.import_module(module)
original = getattr(target, name)
calls = []


def stop_at_second(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGTERM)
    return original(*args, **kwargs)


setattr(target, name, stop_at_second)
importlib.import_module(tool).main(sys.argv[4:])
"""


def test_generate_masks_sigterm_keeps_complete_masks_only(
    repo_root: Path, tiny_split: dict[str, Path], tmp_path: Path,
):
    """SIGTERM while the second image's masks are computed: one line, exit 130, the first
    image's two masks complete, no temporary; the rerun finishes the job."""
    from rtpose.tools.generate_masks import main as generate_masks

    masks = tmp_path / "masks"
    argv = ["--annotations", str(tiny_split["annotations"]), "--images",
            str(tiny_split["images"]), "--masks-dir", str(masks)]
    done = python(repo_root, "-c", STOP_AT_SECOND, "rtpose.coco.masks", "image_masks",
                  "rtpose.tools.generate_masks", *argv)
    assert done.returncode == 130, done.stderr[-3000:]
    one_line_error(done.stderr, "interrupted: ")
    assert sorted(p.name for p in masks.iterdir()) == [
        "mask_all_000000535506.png", "mask_miss_000000535506.png"]
    generate_masks(argv)
    assert len(list(masks.iterdir())) == 4 and temporaries(masks) == []


@pytest.fixture(scope="module")
def tiny_masks(tiny_split: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rtpose.tools.generate_masks import main as generate_masks

    masks = tmp_path_factory.mktemp("masks")
    generate_masks(["--annotations", str(tiny_split["annotations"]), "--images",
                    str(tiny_split["images"]), "--masks-dir", str(masks)])
    return masks


def test_generate_hdf5_sigterm_leaves_no_partial_file(
    repo_root: Path, tiny_split: dict[str, Path], tiny_masks: Path, tmp_path: Path,
):
    """Case 3a: SIGTERM while the second sample is read: one line, exit 130, no file (neither a
    complete-looking one nor a temporary)."""
    out = tmp_path / "out"
    done = python(repo_root, "-c", STOP_AT_SECOND, "rtpose.coco.hdf5_dataset", "load_sample",
                  "rtpose.tools.generate_hdf5", "--split", str(tiny_split["annotations"]),
                  str(tiny_split["images"]), str(tiny_masks), "--val-size", "0",
                  "--output-dir", str(out))
    assert done.returncode == 130, done.stderr[-3000:]
    assert one_line_error(done.stderr, "interrupted: ") == (
        "interrupted: the file being written was discarded")
    assert [p.name for p in out.iterdir()] == ["val_dataset.h5"]  # complete, and empty


def test_generate_hdf5_error_leaves_no_partial_file(
    tiny_split: dict[str, Path], tiny_masks: Path, tmp_path: Path,
):
    """Case 3a: an image that turns out unreadable halfway: one line, no file."""
    from rtpose.tools.generate_hdf5 import main as generate_hdf5

    images = tmp_path / "images"
    shutil.copytree(tiny_split["images"], images)
    (images / "000000463557.jpg").write_bytes(b"not a JPEG")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as excinfo:
        generate_hdf5(["--split", str(tiny_split["annotations"]), str(images), str(tiny_masks),
                       "--val-size", "1", "--output-dir", str(out)])
    assert exit_message(excinfo) == (
        f"error: image {images / '000000463557.jpg'} is missing or unreadable")
    assert sorted(p.name for p in out.iterdir()) == ["val_dataset.h5"]  # the first, complete


def test_server_port_out_of_range(shared_data: Path):
    """Case 8: the port is checked, not left to ZeroMQ (which picked a random one)."""
    from rtpose.tools import dataset_server as server

    dataset = shared_data / "original_formats" / "train_dataset_first3.h5"
    for port in ("99999", "0"):
        with pytest.raises(SystemExit) as excinfo:
            server.main([str(dataset), port, "--quiet"])
        assert exit_message(excinfo) == f"error: port must be in 1..65535, got {port}"


def listening(port: int) -> list[str]:
    """Local IPv4 addresses with a socket listening on ``port`` (Linux /proc/net/tcp)."""
    found = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:
            found.append(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


@pytest.mark.parametrize(("flags", "address", "reach"), [
    ([], "127.0.0.1", "this machine only; --bind 0.0.0.0 serves others"),
    (["--bind", "0.0.0.0"], "0.0.0.0", "reachable from other machines"),
])
def test_server_binds_loopback_unless_told(repo_root: Path, shared_data: Path, flags: list[str],
                                          address: str, reach: str):
    """Case 17: loopback by default, every interface with ``--bind 0.0.0.0``; one start-up line
    says where; the client still reads samples."""
    from rtpose.data.client import DataGeneratorClient

    dataset = shared_data / "original_formats" / "train_dataset_first3.h5"
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "training/dataset_server.py", str(dataset), str(port), "--quiet",
         "--crop-size", str(CROP), *flags],
        cwd=repo_root, env={**os.environ, "PYTHONPATH": str(repo_root)},
        stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline().strip()
        assert line == (f"serving 3 samples of {dataset} on tcp://{address}:{port} ({reach}) "
                        f"with 1 worker(s), pid {proc.pid}")
        assert listening(port) == [address]
        with DataGeneratorClient("127.0.0.1", port, timeout=60) as client:
            image, _, _ = client.receive()
        assert image.shape == (3, CROP, CROP)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_server_bad_bind_address(shared_data: Path):
    from rtpose.tools import dataset_server as server

    dataset = shared_data / "original_formats" / "train_dataset_first3.h5"
    port = free_port()
    with pytest.raises(SystemExit) as excinfo:
        server.main([str(dataset), str(port), "--bind", "192.0.2.1", "--quiet"])  # TEST-NET-1
    assert exit_message(excinfo).startswith(f"error: cannot listen on tcp://192.0.2.1:{port}: ")


@pytest.mark.parametrize(("flags", "message"), [
    (["--timeout=-1"], "timeout must be a positive number of seconds, got -1.0"),
    (["--timeout", "nan"], "timeout must be a positive number of seconds, got nan"),
    (["--port", "99999"], "port must be in 1..65535, got localhost:99999"),
    (["--batch-size", "0"], "batch size and stages must be at least 1, got 0 and 6"),
    (["--batches=-1"], "--batches must be at least 1, got -1"),
])
def test_client_script_bad_flags(flags: list[str], message: str):
    """Case 15."""
    from rtpose.tools import ds_generator_client as client

    with pytest.raises(SystemExit) as excinfo:
        client.main(flags)
    assert exit_message(excinfo) == f"error: {message}"


# ---------------------------------------------------------------------------------------------
# COCO evaluation (cases 7 and 14)
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def coco4(shared_data: Path) -> Path:
    return shared_data / "coco_eval" / "mmpose_coco4"


@pytest.mark.parametrize(("content", "problem"), [
    ({"foo": 1}, "no 'images' list"),
    ([], "the top level is not an object"),
    ({"images": [{"id": 1}], "annotations": [], "categories": [{"id": 1, "name": "person"}]},
     "no category lists keypoints"),
    ({"images": [{"id": 1}], "annotations": [{"image_id": 2}], "categories": []},
     "annotations[0] is not on an image of 'images'"),
])
def test_annotation_file_that_is_not_coco_keypoints(content, problem: str, coco4: Path,
                                                    tmp_path: Path):
    """Case 7: checked before any image is processed or results file written."""
    import evaluate_coco

    path = tmp_path / "ann.json"
    path.write_text(json.dumps(content))
    out = tmp_path / "results.json"
    with pytest.raises(SystemExit) as excinfo:
        evaluate_coco.main(["--annotations", str(path), "--images", str(coco4),
                            "--output", str(out)])
    assert exit_message(excinfo) == (
        f"error: not a COCO keypoint annotation file: {path} ({problem})")
    assert not out.exists()


@pytest.mark.parametrize(("edit", "problem"), [
    (lambda r: r.update(image_id=999),
     "has image_id 999, which is not an image of the annotation file"),
    (lambda r: r.update(keypoints=[1.0, 2.0, 1.0, 3.0]),
     "has 4 keypoint values, not 51 numbers (17 x, y, score)"),
    (lambda r: r.pop("score"), "has no score"),
    (lambda r: r.update(score="high"), "has score 'high', not a number"),
    (lambda r: r.update(category_id=2),
     "has category_id 2, not one of the keypoint categories [1]"),
], ids=["image_id", "4 keypoints", "no score", "text score", "category"])
def test_results_file_that_does_not_fit(edit, problem: str, coco4: Path, tmp_path: Path):
    """Case 14: a wrong image_id, 4 keypoints or no score: one line naming the entry."""
    import evaluate_coco

    results = json.loads((coco4 / "example_coco_preds.json").read_text())
    edit(results[5])
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    with pytest.raises(SystemExit) as excinfo:
        evaluate_coco.main(["--annotations", str(coco4 / "test_coco.json"),
                            "--results", str(path)])
    assert exit_message(excinfo) == f"error: {path}: results[5] {problem}"


# ---------------------------------------------------------------------------------------------
# Export (cases 3b and 16)
# ---------------------------------------------------------------------------------------------

def tiny_model() -> keras.Model:
    image = keras.Input((None, None, 3), name="image")
    return keras.Model(image, keras.layers.Conv2D(2, 1, name="conv")(image))


def test_export_to_an_unwritable_place(random_weights: Path):
    """Case 16: one line, before the (slow) conversion starts."""
    from export import main

    with pytest.raises(SystemExit) as excinfo:
        main(["--weights", str(random_weights), "--format", "onnx", "--output", "/proc/e.onnx"])
    assert exit_message(excinfo).startswith("error: cannot write /proc/e.onnx: ")


EXPORT_KILLED = """
import os, signal, sys

import cv2
import keras

from rtpose.runtime.export import export_model


def killed(self, path, *args, **kwargs):  # the converter has written part of the file
    with open(path, "wb") as file:
        file.write(b"half an ONNX file")
    os.kill(os.getpid(), signal.SIGKILL)


keras.Model.export = killed
image = keras.Input((None, None, 3), name="image")
export_model(keras.Model(image, keras.layers.Conv2D(2, 1)(image)), "onnx", sys.argv[1])
"""


def test_export_killed_leaves_only_what_the_next_export_removes(repo_root: Path,
                                                                 tmp_path: Path):
    """Case 3b: kill -9 mid-export leaves a temporary named by its process, no output; the next
    export into the folder removes it."""
    import onnxruntime

    from rtpose.runtime.export import export_model

    out = tmp_path / "mz.onnx"
    done = python(repo_root, "-c", EXPORT_KILLED, str(out))
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    assert not out.exists() and len(temporaries(tmp_path)) == 1
    export_model(tiny_model(), "onnx", out)
    assert [p.name for p in tmp_path.iterdir()] == ["mz.onnx"]
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (maps,) = session.run(None, {"image": np.zeros((1, 16, 24, 3), np.float32)})
    assert maps.shape == (1, 16, 24, 2)


# ---------------------------------------------------------------------------------------------
# Inference (cases 2, 3c, 5, 6, 9, 10, 11): demo_image.py, the pipeline's bounds, damaged images;
# the SIGTERM'd video of case 2 is in tests/test_demo_camera.py
# ---------------------------------------------------------------------------------------------

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
