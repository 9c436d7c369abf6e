"""Settings of a training run, with the defaults of the original (CMU solver, Keras port).

Light on purpose (no Keras import), so that ``train_pose.py --help`` answers at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from rtpose.errors import RtposeError
from rtpose.models import get_architecture
from rtpose.paths import REPO_ROOT

VGG19_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"  # Keras' ImageNet VGG19, no top
LAST_CHECKPOINT = "last.keras"  # in the weights directory: the training model, for resuming


@dataclass(frozen=True)
class TrainConfig:
    """One training run: solver (Caffe's CMU ``solver.prototxt``), data, files and devices.

    An epoch is ``steps_per_epoch`` iterations (default ``train_samples // batch_size``, as in
    the original Keras port) and the run lasts ``ceil(max_iter / iterations_per_epoch)``
    epochs unless ``epochs`` is given. ``stages`` below 6 is for quick tests only. Settings
    that cannot train (a NaN or negative rate, an empty batch...) raise ``RtposeError`` naming
    the flag.
    """

    arch: str = "cmu"
    batch_size: int = 10
    base_lr: float = 4e-5
    momentum: float = 0.9
    weight_decay: float = 5e-4
    gamma: float = 0.333
    stepsize: int = 136106
    max_iter: int = 600000
    train_samples: int = 117576
    val_samples: int = 2476
    train_servers: tuple[str, ...] = ("localhost:5555",)
    val_servers: tuple[str, ...] = ("localhost:5556",)
    weights_dir: Path = REPO_ROOT / "training" / "weights"
    logs_dir: Path = REPO_ROOT / "training" / "logs"
    crop_size: int = 368
    steps_per_epoch: int | None = None
    val_steps: int | None = None
    epochs: int | None = None
    vgg_weights: Path | None = None
    init_weights: Path | None = None
    from_scratch: bool = False
    resume: bool = True
    distribute: bool = False
    stages: int = 6
    timeout: float = 60.0

    def __post_init__(self) -> None:
        counts = ("batch_size", "stepsize", "max_iter", "train_samples", "val_samples", "stages",
                  "crop_size", "steps_per_epoch", "val_steps", "epochs")
        for name in counts:
            value = getattr(self, name)
            if value is not None and value < 1:
                raise RtposeError(f"{_flag(name)} must be at least 1, got {value}")
        for name, low, high in (("base_lr", 0, math.inf), ("gamma", 0, math.inf),
                                ("timeout", 0, math.inf)):
            value = getattr(self, name)
            if not (math.isfinite(value) and low < value < high):
                raise RtposeError(f"{_flag(name)} must be a positive number, got {value}")
        if not (math.isfinite(self.momentum) and 0 <= self.momentum < 1):
            raise RtposeError(f"--momentum must be in [0, 1), got {self.momentum}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise RtposeError(f"--weight-decay must be a number >= 0, got {self.weight_decay}")
        stride = get_architecture(self.arch).stride  # crops are a multiple of it
        if self.crop_size % stride:
            raise RtposeError(f"--crop-size must be a multiple of {stride}, got {self.crop_size}")

    @property
    def checkpoint(self) -> Path:
        """``last.keras`` of the weights directory."""
        return Path(self.weights_dir) / LAST_CHECKPOINT

    @property
    def iterations_per_epoch(self) -> int:
        return self.steps_per_epoch or max(1, self.train_samples // self.batch_size)

    @property
    def validation_steps(self) -> int:
        return self.val_steps or max(1, self.val_samples // self.batch_size)

    @property
    def total_epochs(self) -> int:
        return self.epochs or math.ceil(self.max_iter / self.iterations_per_epoch)


def _flag(field_name: str) -> str:
    """The command-line flag of a setting: ``base_lr`` -> ``--base-lr``."""
    return "--" + field_name.replace("_", "-")
