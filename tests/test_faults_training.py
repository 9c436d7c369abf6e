"""Faults of training (issue 15, cases 1 and 4): checkpoints, interruptions, the lock, NaN, flags.

Interruptions strike at the exact moment of a save through a hook (a patched writer that sends the
signal to its own process), never after a sleep; the servers are conftest's ``servers`` at
``CROP``."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import exit_message, free_port, one_line_error, python, temporaries

from rtpose.files import FolderLock

CROP = 64  # crop of the training tests: small, so that an epoch takes a second



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
