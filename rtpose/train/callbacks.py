"""Per-epoch bookkeeping of a training run: learning rate, checkpoints, loss curve, resume point.

Files in the weights directory:

- ``weights.NNNN.weights.h5`` after epoch NNNN (1-based) and ``weights.best.weights.h5`` at the
  lowest validation loss: weights of the *testing* model, ready for ``load_model(arch, path)``
  and the demos;
- ``last.keras``: the whole training model with its optimiser state, for resuming;
- ``training.csv``: Keras' CSV log (``epoch`` 0-based, losses, ``learning_rate``);
- ``losses.png``: training and validation loss per epoch.

Every file is written under a temporary name and renamed into place (:mod:`rtpose.files`), so
an interrupted save (Ctrl+C, SIGTERM, ``kill -9``) leaves the previous one intact. A NaN or
infinite training loss, or weights that became so, raise :class:`TrainingDiverged` before anything
of that epoch is saved.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import keras
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from rtpose.errors import RtposeError
from rtpose.files import atomic_path, write_text
from rtpose.models import nonfinite_weights
from rtpose.train.config import LAST_CHECKPOINT
from rtpose.train.initial_weights import copy_weights_by_name

BEST_WEIGHTS = "weights.best.weights.h5"
EPOCH_WEIGHTS = "weights.{epoch:04d}.weights.h5"
TRAINING_LOG = "training.csv"
LOSS_PLOT = "losses.png"


def read_log(path: str | Path) -> list[dict[str, float]]:
    """Rows of a Keras CSV log as floats; no file, no rows."""
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="") as file:
        return [{k: float(v) if v not in ("", None) else math.nan for k, v in row.items()}
                for row in csv.DictReader(file)]


def write_log(rows: list[dict[str, float]], path: str | Path) -> None:
    """Write rows in Keras' CSV log format (``epoch``, then the other keys in name order)."""
    keys = sorted({key for row in rows for key in row} - {"epoch"})
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["epoch", *keys])
    for row in rows:
        values = [row.get(key, math.nan) for key in keys]
        writer.writerow([int(row["epoch"]), *("" if math.isnan(v) else v for v in values)])
    write_text(path, text.getvalue())


def next_epoch(log: list[dict[str, float]]) -> int:
    """The 0-based epoch after the last logged one (0 for an empty log)."""
    return int(max(row["epoch"] for row in log)) + 1 if log else 0


def best_loss(log: list[dict[str, float]], key: str) -> float:
    """The lowest ``key`` in the log, ``inf`` when there is none."""
    values = [row[key] for row in log if not math.isnan(row.get(key, math.nan))]
    return min(values, default=math.inf)


class TrainingDiverged(RtposeError):
    """The loss or the weights became NaN or infinite."""


class StopOnNonFinite(keras.callbacks.Callback):
    """Raises :class:`TrainingDiverged` at the first training step whose loss is not finite."""

    epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise TrainingDiverged(f"the training loss became {float(loss)} at iteration "
                                   f"{batch + 1} of epoch {self.epoch + 1}")


class LearningRateLogger(keras.callbacks.Callback):
    """Adds ``learning_rate`` (the rate for the next update) to each epoch's logs."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            rate = self.model.optimizer.learning_rate
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(rate))


class Checkpoints(keras.callbacks.Callback):
    """Saves the epoch's weights, the best weights and ``last.keras`` (see module docstring).

    ``testing_model`` is the testing variant of the trained architecture: the training model's
    weights are copied into it by layer name before its weights are written. Weights that hold
    a NaN or an infinity are never saved: :class:`TrainingDiverged` instead.
    """

    def __init__(self, weights_dir: str | Path, testing_model: keras.Model,
                 monitor: str = "val_loss", best: float = math.inf) -> None:
        super().__init__()
        self.weights_dir = Path(weights_dir)
        self.testing_model = testing_model
        self.monitor = monitor
        self.best = best

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        bad = nonfinite_weights(self.model)
        if bad:
            raise TrainingDiverged(f"the weights became NaN or infinite in epoch {epoch + 1} "
                                   f"({len(bad)} of {len(self.model.weights)} arrays, the "
                                   f"first {bad[0]})")
        copy_weights_by_name(self.model, self.testing_model)
        self._save(self.testing_model.save_weights, EPOCH_WEIGHTS.format(epoch=epoch + 1))
        value = logs.get(self.monitor, math.nan)
        if value < self.best:
            self.best = value
            self._save(self.testing_model.save_weights, BEST_WEIGHTS)
        # Last, so that a run stopped between these saves resumes from the previous epoch.
        self._save(self.model.save, LAST_CHECKPOINT)

    def _save(self, write, name: str) -> None:
        with atomic_path(self.weights_dir / name) as tmp:
            write(tmp)


class TrainingLog(keras.callbacks.Callback):
    """Keras' CSV log, rewritten whole (and atomically) after every epoch; ``rows`` are those of
    the run being resumed. Replaces ``keras.callbacks.CSVLogger``, which appends in place."""

    def __init__(self, path: str | Path, rows: list[dict[str, float]] | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.rows = list(rows or [])

    def on_epoch_end(self, epoch, logs=None):
        values = {key: float(value) for key, value in (logs or {}).items()}
        self.rows.append({"epoch": epoch, **values})
        write_log(self.rows, self.path)


class LossPlot(keras.callbacks.Callback):
    """Redraws ``losses.png`` from the CSV log (all runs of a resumed training) every epoch."""

    def __init__(self, log_path: str | Path, out_path: str | Path) -> None:
        super().__init__()
        self.log_path = Path(log_path)
        self.out_path = Path(out_path)

    def on_epoch_end(self, epoch, logs=None):
        plot_losses(read_log(self.log_path), self.out_path)


def plot_losses(log: list[dict[str, float]], out_path: str | Path) -> None:
    """Training and validation total loss against the (1-based) epoch, written as a PNG
    (atomically)."""
    figure = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    epochs = [row["epoch"] + 1 for row in log]
    for key, label in (("loss", "training"), ("val_loss", "validation")):
        if any(key in row for row in log):
            axes.plot(epochs, [row.get(key, math.nan) for row in log], marker="o", label=label)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("epoch")
    axes.set_ylabel("loss (sum over the stage outputs)")
    axes.set_yscale("log")
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    with atomic_path(out_path) as tmp:
        figure.savefig(tmp)
