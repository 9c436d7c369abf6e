"""Reading extracted poses back: any of the three formats into ``rtpose.people.People`` per
frame.

    poses = load_poses("out/a/x.npz")              # or out/a/x.jsonl, out/a/x/ (OpenPose files)
    for frame, people in poses:                    # people.keypoints: (N, 18, 3)
        ...
    corpus = load_corpus("out")                    # {"a/x.mp4": Poses, ...}, every done input

A damaged output (a truncated ``.npz``, a line that is not JSON) or manifest is an
``RtposeError`` naming the file; ``load_corpus(out, strict=False)`` skips a damaged manifest
line or an input whose output is missing or damaged, with a warning, and reads the rest.

OpenPose files carry no timestamps (``Poses.timestamps`` is None then); their frame numbers
come from the file names. ``npz`` keypoints are float32: the positions (whole pixels) are
exact, the part scores rounded to float32's 7 digits.
"""

from __future__ import annotations

import re
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtpose.errors import RtposeError, first_line
from rtpose.extract.manifest import MANIFEST_NAME, read_manifest
from rtpose.people import People
from rtpose.skeleton import NUM_PARTS
from rtpose.stream.outputs import read_json_lines

OPENPOSE_FRAME = re.compile(r"_(\d{12})_keypoints\.json$")


@dataclass(frozen=True, eq=False)
class Poses:
    """The people of one input, frame by frame: ``frames`` (F,) the source's frame numbers,
    ``people`` F ``People``, ``timestamps`` (F,) seconds or None."""

    frames: np.ndarray
    people: list[People]
    timestamps: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.people)

    def __iter__(self) -> Iterator[tuple[int, People]]:
        return zip(self.frames.tolist(), self.people, strict=True)


def load_poses(path: str | Path) -> Poses:
    """The poses in an extraction output: a ``.jsonl`` or ``.npz`` file, an OpenPose
    ``*_keypoints.json`` file (one frame), or a folder of them (a video's frames)."""
    path = Path(path)
    try:
        if path.is_dir():
            return _openpose_folder(path)
        if path.suffix == ".jsonl":
            lines = read_json_lines(path)
            return Poses(np.array([line["frame"] for line in lines], np.int64),
                         [People.from_json(line) for line in lines],
                         np.array([line["timestamp"] for line in lines], np.float64))
        if path.suffix == ".npz":
            return _npz(path)
        if path.name.endswith("_keypoints.json"):
            match = OPENPOSE_FRAME.search(path.name)
            frame = int(match.group(1)) if match else 0
            return Poses(np.array([frame], np.int64), [_openpose_file(path)])
    except FileNotFoundError:
        raise RtposeError(f"cannot read poses {path}: no such file") from None
    except (OSError, ValueError, KeyError, TypeError, IndexError, EOFError,
            zipfile.BadZipFile, zlib.error) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else first_line(e)
        raise RtposeError(f"cannot read poses {path}: damaged or not an extraction output "
                          f"({reason})") from None
    raise RtposeError(f"cannot read poses {path}: not a .jsonl, .npz, *_keypoints.json file "
                      "or a folder of them")


def load_corpus(output: str | Path, strict: bool = True) -> dict[str, Poses]:
    """Every input that an extraction's manifest (``output/manifest.jsonl``) records as done,
    by input name, its poses read from its output. ``strict=False``: a damaged manifest line,
    or an input whose output is missing or damaged, is left out with a warning."""
    output = Path(output)
    records = read_manifest(output / MANIFEST_NAME, strict)
    corpus = {}
    for name, record in sorted(records.items()):
        if record["status"] != "done":
            continue
        try:
            corpus[name] = load_poses(output / record["output"])
        except RtposeError as error:
            if strict:
                raise
            warnings.warn(f"{name} left out: {error}", stacklevel=2)
    return corpus


def _openpose_file(path: Path) -> People:
    return People.from_json(path.read_text(encoding="utf-8"))


def _openpose_folder(folder: Path) -> Poses:
    files = sorted((int(m.group(1)), p) for p in folder.iterdir()
                   if (m := OPENPOSE_FRAME.search(p.name)))
    if not files:
        raise RtposeError(f"cannot read poses {folder}: no *_<frame>_keypoints.json files")
    return Poses(np.array([frame for frame, _ in files], np.int64),
                 [_openpose_file(p) for _, p in files])


def _npz(path: Path) -> Poses:
    with open(path, "rb") as file, np.load(file, allow_pickle=False) as data:
        counts = data["counts"]
        keypoints = data["keypoints"].astype(np.float64).reshape(-1, NUM_PARTS, 3)
        scores, part_counts = data["scores"], data["part_counts"]
        frames, timestamps = data["frames"], data["timestamps"]
    if not (len(frames) == len(timestamps) == len(counts)
            and counts.sum() == len(keypoints) == len(scores) == len(part_counts)):
        raise ValueError("its arrays disagree in length")
    bounds = np.concatenate([[0], np.cumsum(counts)])
    people = [People(keypoints[a:b], scores[a:b].astype(np.float64),
                     part_counts[a:b].astype(np.int64))
              for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return Poses(frames, people, timestamps)
