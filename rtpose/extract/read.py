"""Reading extracted poses back: any format into ``rtpose.people.People`` per frame, with
person IDs where the video was tracked.

    poses = load_poses("out/a/x.npz")              # or out/a/x.jsonl, out/a/x/ (OpenPose files)
    for frame, people in poses:                    # people.keypoints: (N, 18, 3)
        ...
    corpus = load_corpus("out")                    # {"a/x.mp4": FramePoses, ...}, every done input

A damaged output (a truncated ``.npz``, a line that is not JSON) or manifest is an
``RtposeError`` naming the file; ``load_corpus(out, strict=False)`` skips a damaged manifest
line or an input whose output is missing or damaged, with a warning, and reads the rest.

OpenPose files carry no timestamps (``FramePoses.timestamps`` is None then); their frame numbers
come from the file names. ``npz`` keypoints are float32: the positions (whole pixels) are
exact, the part scores rounded to float32's 7 digits. Kinetics-skeleton files give their
1-based frame indices and their coordinates back in pixels (to 4 decimals of the frame size);
a pyskl annotation (``a/x.pkl``) gives frames 0..T-1 and person IDs 0..M-1 (float16
coordinates), ``load_pyskl`` the whole corpus pickle; csv and kinetics carry no person scores
(0).
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtpose.errors import RtposeError, first_line
from rtpose.extract.datasets import load_csv, load_kinetics, load_pyskl_annotation
from rtpose.extract.manifest import MANIFEST_NAME, read_manifest
from rtpose.people import People
from rtpose.skeleton import NUM_PARTS
from rtpose.stream.outputs import read_json_lines

# What a damaged or foreign file raises while it is read.
DAMAGED = (OSError, ValueError, KeyError, TypeError, IndexError, EOFError, zipfile.BadZipFile,
           zlib.error, pickle.UnpicklingError)
OPENPOSE_FRAME = re.compile(r"_(\d{12})_keypoints\.json$")


@dataclass(frozen=True, eq=False)
class FramePoses:
    """The people of one input, frame by frame: ``frames`` (F,) the source's frame numbers,
    ``people`` F ``People``, ``timestamps`` (F,) seconds or None."""

    frames: np.ndarray
    people: list[People]
    timestamps: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.people)

    def __iter__(self) -> Iterator[tuple[int, People]]:
        return zip(self.frames.tolist(), self.people, strict=True)


def load_poses(path: str | Path) -> FramePoses:
    """The poses in an extraction output: a ``.jsonl`` or ``.npz`` file, an OpenPose
    ``*_keypoints.json`` file (one frame), or a folder of them (a video's frames)."""
    path = Path(path)
    try:
        if path.is_dir():
            return _openpose_folder(path)
        if path.suffix == ".jsonl":
            lines = read_json_lines(path)
            return FramePoses(np.array([line["frame"] for line in lines], np.int64),
                         [People.from_json(line) for line in lines],
                         np.array([line["timestamp"] for line in lines], np.float64))
        if path.suffix == ".npz":
            return _npz(path)
        if path.suffix == ".csv":
            frames, timestamps, people = load_csv(path)
            return FramePoses(frames, people, timestamps)
        if path.suffix == ".pkl":
            return _pyskl(_unpickle(path))
        if path.name.endswith("_keypoints.json"):
            match = OPENPOSE_FRAME.search(path.name)
            frame = int(match.group(1)) if match else 0
            return FramePoses(np.array([frame], np.int64), [_openpose_file(path)])
        if path.suffix == ".json":
            return FramePoses(*load_kinetics(path))
    except FileNotFoundError:
        raise RtposeError(f"cannot read poses {path}: no such file") from None
    except DAMAGED as e:
        raise RtposeError(f"cannot read poses {path}: damaged or not an extraction output "
                          f"({_reason(e)})") from None
    raise RtposeError(f"cannot read poses {path}: not a .jsonl, .npz, .csv, .pkl, .json or "
                      "*_keypoints.json file or a folder of them")


def load_pyskl(path: str | Path) -> dict[str, FramePoses]:
    """A pyskl corpus pickle (``pyskl.pkl``): every annotation's poses by ``frame_dir``."""
    try:
        corpus = _unpickle(Path(path))
        return {a["frame_dir"]: _pyskl(a) for a in corpus["annotations"]}
    except FileNotFoundError:
        raise RtposeError(f"cannot read pyskl pickle {path}: no such file") from None
    except DAMAGED as e:
        raise RtposeError(f"cannot read pyskl pickle {path}: {_reason(e)}") from None


def _reason(error: Exception) -> str:
    return (error.strerror if isinstance(error, OSError) and error.strerror
            else first_line(error))


def _unpickle(path: Path):
    with open(path, "rb") as file:
        return pickle.load(file)


def _pyskl(annotation: dict) -> FramePoses:
    people = load_pyskl_annotation(annotation)
    return FramePoses(np.arange(len(people), dtype=np.int64), people)


def load_corpus(output: str | Path, strict: bool = True) -> dict[str, FramePoses]:
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


def _openpose_folder(folder: Path) -> FramePoses:
    files = sorted((int(m.group(1)), p) for p in folder.iterdir()
                   if (m := OPENPOSE_FRAME.search(p.name)))
    if not files:
        raise RtposeError(f"cannot read poses {folder}: no *_<frame>_keypoints.json files")
    return FramePoses(np.array([frame for frame, _ in files], np.int64),
                 [_openpose_file(p) for _, p in files])


def _npz(path: Path) -> FramePoses:
    with open(path, "rb") as file, np.load(file, allow_pickle=False) as data:
        counts = data["counts"]
        keypoints = data["keypoints"].astype(np.float64).reshape(-1, NUM_PARTS, 3)
        scores, part_counts = data["scores"], data["part_counts"]
        frames, timestamps = data["frames"], data["timestamps"]
        ids = data["person_ids"] if "person_ids" in data else None
        filled = data["filled"] if "filled" in data else None
    if not (len(frames) == len(timestamps) == len(counts)
            and counts.sum() == len(keypoints) == len(scores) == len(part_counts)):
        raise ValueError("its arrays disagree in length")
    bounds = np.concatenate([[0], np.cumsum(counts)])
    people = [People(keypoints[a:b], scores[a:b].astype(np.float64),
                     part_counts[a:b].astype(np.int64),
                     None if ids is None else ids[a:b].astype(np.int64),
                     None if filled is None or not filled[a:b].any() else filled[a:b])
              for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return FramePoses(frames, people, timestamps)
