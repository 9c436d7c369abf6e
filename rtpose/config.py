"""Inference and grouping parameters: frozen dataclasses with the CMU defaults, and the INI reader.

The defaults are the original demo's (``config`` file of the 2017 Keras port and CMU's
``config.m``). ``load_config`` reads a file in that format: section ``[param]`` holds
``scale_search``, ``thre1``, ``thre2``, ``mid_num``, ``min_num`` (and keys this package does not
use, which are ignored); the model section (``[[1]]`` under ``[models]``, chosen by
``modelID``) holds ``boxsize``, ``padValue`` and ``stride`` (the last only checked against the
network's).
"""

from __future__ import annotations

import configparser
import math
from dataclasses import dataclass, replace
from pathlib import Path

from rtpose.errors import RtposeError, first_line


@dataclass(frozen=True)
class InferenceParams:
    """How the image is fed to the network (``rtpose.geometry`` states the convention):
    ``boxsize`` the input height at scale 1, ``pad_value`` the padding's grey level, ``scales``
    the multiples of boxsize / image height. The network's stride is its architecture's;
    ``stride`` is only what a config file states, checked against it (None: not stated).
    ``flip``: also run the mirrored input and average the outputs, turned back, at every scale
    (test-time flip averaging; not the original's).
    """

    boxsize: int = 368
    pad_value: int = 128
    scales: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0)
    stride: int | None = None
    flip: bool = False

    def __post_init__(self) -> None:
        _check(self.boxsize > 0, f"boxsize must be positive, got {self.boxsize}")
        _check(self.stride is None or self.stride > 0,
               f"stride must be positive, got {self.stride}")
        _check(0 <= self.pad_value <= 255, f"pad_value must be in 0..255, got {self.pad_value}")
        _check(len(self.scales) > 0, "scales must not be empty")
        _check(
            all(math.isfinite(s) and s > 0 for s in self.scales),
            f"scales must be positive, got {self.scales}",
        )


@dataclass(frozen=True)
class GroupingParams:
    """How peaks and PAFs become people.

    ``thre1``: a heatmap peak must exceed it (after Gaussian smoothing). ``thre2``: a PAF sample
    along a candidate limb counts as agreeing when its projection exceeds it. ``mid_num``: PAF
    samples per candidate limb. A person is kept with at least ``min_parts`` parts and a mean
    score (total score / part count) of at least ``min_mean_score``. ``refine``: report each
    part at its sub-pixel position on the smoothed heatmap instead of the peak pixel (people
    are still found from the peak pixels; not the original's).
    """

    thre1: float = 0.1
    thre2: float = 0.05
    mid_num: int = 10
    min_parts: int = 4
    min_mean_score: float = 0.4
    refine: bool = False

    def __post_init__(self) -> None:
        # Heatmaps and PAF projections lie in 0..1: a threshold outside finds every pixel or none.
        _check(0 <= self.thre1 < 1, f"thre1 must be in [0, 1), got {self.thre1}")
        _check(0 <= self.thre2 < 1, f"thre2 must be in [0, 1), got {self.thre2}")
        _check(self.mid_num >= 2, f"mid_num must be at least 2, got {self.mid_num}")
        _check(self.min_parts >= 1, f"min_parts must be at least 1, got {self.min_parts}")
        _check(
            math.isfinite(self.min_mean_score),
            f"min_mean_score must be a number, got {self.min_mean_score}",
        )


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise RtposeError(message)


# The CMU defaults, as default arguments.
CMU_INFERENCE = InferenceParams()
CMU_GROUPING = GroupingParams()


@dataclass(frozen=True)
class Preset:
    """Settings that replace the parameters' together (``apply_preset``); None keeps them."""

    flip: bool | None = None
    refine: bool | None = None
    thre1: float | None = None
    min_mean_score: float | None = None


# ``original``: the CMU algorithm as it is. ``accurate``: chosen on coco_mini train2017 (see
# docs/evaluation.md): flip averaging, and lower thresholds on peaks and on a person's
# mean score (the averaged maps' peaks are lower, most of all over several scales); the best
# of thre1 0.1/0.05/0.02/0.01 x min_mean_score 0.4/0.3/0.2/0.1 at 1 and at 4 scales. With flip
# averaging, sub-pixel keypoints lost AP there (0.002-0.003), so it keeps the peak pixels.
PRESETS: dict[str, Preset] = {
    "original": Preset(),
    "accurate": Preset(flip=True, thre1=0.02, min_mean_score=0.2),
}


def apply_preset(
    name: str, inference: InferenceParams = CMU_INFERENCE, grouping: GroupingParams = CMU_GROUPING
) -> tuple[InferenceParams, GroupingParams]:
    """The parameters with preset ``name`` (a key of ``PRESETS``) applied."""
    if name not in PRESETS:
        raise RtposeError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    preset = PRESETS[name]
    given = {key: value for key, value in vars(preset).items() if value is not None}
    inference_keys = {"flip"}
    inference = replace(inference, **{k: v for k, v in given.items() if k in inference_keys})
    grouping = replace(grouping, **{k: v for k, v in given.items() if k not in inference_keys})
    return inference, grouping


def load_config(path: str | Path) -> tuple[InferenceParams, GroupingParams]:
    """Read an original-format ``config`` file; keys that are absent keep the CMU defaults."""
    path = Path(path)
    parser = configparser.ConfigParser(inline_comment_prefixes=("#", ";"), strict=False)
    try:
        with open(path, encoding="utf-8") as file:
            parser.read_file(file)
    except OSError as e:
        raise RtposeError(f"cannot read config file {path}: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise RtposeError(f"config file {path} is not UTF-8 text (it holds the byte "
                          f"0x{e.object[e.start]:02x}); save it as UTF-8") from e
    except configparser.Error as e:
        raise RtposeError(f"malformed config file {path}: {first_line(e)}") from e

    param = parser["param"] if parser.has_section("param") else {}
    model_id = param.get("modelid", "1")
    # configparser reads the original's nested ``[[1]]`` header as a section named ``[1]``.
    candidates = (f"[{model_id}]", model_id, "models")
    model_section = next((parser[name] for name in candidates if parser.has_section(name)), {})

    def read(section, key: str, cast, default):
        if key not in section:
            return default
        text = section[key]
        try:
            return cast(text)
        except ValueError:
            raise RtposeError(f"bad value for {key}: {text!r}") from None

    try:
        inference = InferenceParams(
            boxsize=read(model_section, "boxsize", int, CMU_INFERENCE.boxsize),
            stride=read(model_section, "stride", int, None),
            pad_value=read(model_section, "padvalue", int, CMU_INFERENCE.pad_value),
            scales=read(param, "scale_search", parse_scales, CMU_INFERENCE.scales),
        )
        grouping = GroupingParams(
            thre1=read(param, "thre1", float, CMU_GROUPING.thre1),
            thre2=read(param, "thre2", float, CMU_GROUPING.thre2),
            mid_num=read(param, "mid_num", int, CMU_GROUPING.mid_num),
            min_parts=read(param, "min_num", int, CMU_GROUPING.min_parts),
            min_mean_score=read(param, "min_mean_score", float, CMU_GROUPING.min_mean_score),
        )
    except RtposeError as e:
        raise RtposeError(f"config file {path}: {e}") from None
    return inference, grouping


def parse_scales(text: str) -> tuple[float, ...]:
    """``"0.5, 1, 1.5, 2"`` → ``(0.5, 1.0, 1.5, 2.0)``; raises ``ValueError`` on bad text."""
    parts = [part.strip() for part in text.split(",")]
    if not any(parts):
        raise ValueError("no scales")
    return tuple(float(part) for part in parts)
