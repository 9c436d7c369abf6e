"""The output formats of one input, written under temporary names and published when complete.

Names are relative to the output folder; ``a/x`` is the input ``a/x.mp4`` (or ``a/x.jpg``)
without its extension. Frame numbers are the source's (frame 30 with ``--every 10`` is the
fourth frame processed); an image is frame 0.

- ``openpose``: OpenPose's ``--write_json`` files (OpenPose 1.7, ``"version": 1.3``), one per
  frame: a video's in a folder ``a/x/`` as ``x_<frame:012d>_keypoints.json``, an image's as
  ``a/x_keypoints.json``. Each person has ``pose_keypoints_2d`` (18 COCO-model parts in
  OpenPose's COCO order, which is the CMU order: x0, y0, c0, ..., x17, y17, c17), OpenPose's
  ``person_id`` (``[id]`` in a tracked video, else ``[-1]``), the face and hand keypoints with
  ``--face`` / ``--hands`` (else empty) and empty 3-D arrays, plus rtpose's ``score`` and
  ``part_count`` (``rtpose.people``).
- ``jsonl``: ``a/x.jsonl``, one line per frame, as ``rtpose.stream.outputs.JsonLinesOutput``:
  ``{"frame": 0, "timestamp": 0.0, "people": [{"pose_keypoints_2d": [...], "score": ...,
  "part_count": ...}]}`` (timestamp: the frame's presentation time, seconds), with
  ``--hands`` / ``--face`` also each person's ``hand_left_keypoints_2d``,
  ``hand_right_keypoints_2d`` and ``face_keypoints_2d``.
- ``npz``: ``a/x.npz``, one file per input, every frame's people stacked: ``frames`` (F,)
  int64, ``timestamps`` (F,) float64, ``counts`` (F,) int64 people per frame, ``keypoints``
  (P, 18, 3) float32 (P = all frames' people, frame after frame; positions exact, part scores
  rounded to float32), ``scores`` (P,) float64,
  ``part_counts`` (P,) int64, ``fps`` () float64, ``size`` (2,) int64 width, height; in a
  tracked video ``person_ids`` (P,) int64, and ``filled`` (P, 18) bool after ``--smooth``.
  Written compressed, with fixed zip dates: the same people give the same bytes.
- ``kinetics``, ``pyskl``, ``csv``: skeleton datasets, see ``rtpose.extract.datasets``.
- ``--smooth``: the formats' writers get every person's whole track smoothed, at the end of
  the input (``rtpose.track.offline``); the rendering draws the people as found.
- ``--render``: ``a/x_rendered.mp4`` (the video with skeletons, at the processed frames'
  rate) or ``a/x_rendered.jpg``.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import PurePosixPath
from typing import IO

import cv2
import numpy as np

from rtpose.draw import draw_people
from rtpose.errors import RtposeError
from rtpose.extract import datasets
from rtpose.extract.inputs import Item
from rtpose.extract.store import Store
from rtpose.people import OPENPOSE_JSON_VERSION, People
from rtpose.track import OfflineParams

FORMATS = ("openpose", "jsonl", "npz", *datasets.DATASET_FORMATS)
SUFFIXES = {"jsonl": "jsonl", "npz": "npz", "kinetics": "json", "pyskl": "pkl", "csv": "csv"}
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can hold: no clock in the bytes
OPENPOSE_EMPTY_FIELDS = ("face_keypoints_2d", "hand_left_keypoints_2d", "hand_right_keypoints_2d",
                         "pose_keypoints_3d", "face_keypoints_3d", "hand_left_keypoints_3d",
                         "hand_right_keypoints_3d")


def output_name(item: Item, format: str) -> str:
    """The name of ``item``'s output in ``format`` (a folder for a video in ``openpose``)."""
    if format == "openpose":
        return item.stem if item.kind == "video" else f"{item.stem}_keypoints.json"
    if format in SUFFIXES:
        return f"{item.stem}.{SUFFIXES[format]}"
    raise RtposeError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")


def render_name(item: Item) -> str:
    return f"{item.stem}_rendered.{'mp4' if item.kind == 'video' else 'jpg'}"


def output_names(item: Item, format: str, render: bool) -> list[str]:
    """Every output of ``item``: ``format``'s, then the rendering's if ``render``."""
    return [output_name(item, format), *([render_name(item)] if render else [])]


def openpose_frame_name(stem: str, frame: int) -> str:
    """OpenPose's name of a video frame's file: ``<video>_<frame:012d>_keypoints.json``."""
    return f"{PurePosixPath(stem).name}_{frame:012d}_keypoints.json"


def openpose_json(people: People) -> dict:
    """One frame in OpenPose 1.7's ``--write_json`` form, with rtpose's score and count."""
    persons = []
    for person in people.to_openpose_json()["people"]:
        full = {"person_id": [person.get("person_id", -1)],
                "pose_keypoints_2d": person["pose_keypoints_2d"]}
        full.update((field, person.get(field, [])) for field in OPENPOSE_EMPTY_FIELDS)
        full.update(score=person["score"], part_count=person["part_count"])
        if "filled" in person:
            full["filled"] = person["filled"]
        persons.append(full)
    return {"version": OPENPOSE_JSON_VERSION, "people": persons}


class Writer:
    """One output of one input: ``write`` each processed frame, then ``commit`` (publish it)
    or ``abort`` (drop it)."""

    def __init__(self, store: Store, name: str, folder: bool = False) -> None:
        self.store = store
        self.name = name
        store.clean_stale(name)
        self.staged = store.stage(name, folder)

    def write(self, frame: int, timestamp_s: float, people: People, image: np.ndarray,
              peaks: list[np.ndarray]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Finish the temporary file (before ``commit`` or ``abort``)."""

    def commit(self) -> None:
        try:
            self.close()
            self.store.publish(self.staged, self.name)
        except OSError as e:
            raise RtposeError(self.cannot_write(e)) from e

    def cannot_write(self, error: OSError) -> str:
        """A failed write in one line: ``cannot write /out/a.jsonl: no space left on device``."""
        reason = error.strerror or str(error)
        return f"cannot write {self.store.location}/{self.name}: {reason[:1].lower()}{reason[1:]}"

    def abort(self) -> None:
        try:
            self.close()
        finally:
            self.store.discard(self.staged)


class OpenPoseWriter(Writer):
    """A video's frames into a folder, or an image's one file (see the module docstring)."""

    def __init__(self, store: Store, item: Item) -> None:
        self.video = item.kind == "video"
        self.stem = item.stem
        super().__init__(store, output_name(item, "openpose"), folder=self.video)

    def write(self, frame, timestamp_s, people, image, peaks) -> None:
        path = self.staged / openpose_frame_name(self.stem, frame) if self.video else self.staged
        path.write_text(json.dumps(openpose_json(people)) + "\n", encoding="utf-8")


class JsonLinesWriter(Writer):
    def __init__(self, store: Store, item: Item) -> None:
        super().__init__(store, output_name(item, "jsonl"))
        self._file: IO[str] | None = open(self.staged, "w", encoding="utf-8")

    def write(self, frame, timestamp_s, people, image, peaks) -> None:
        line = {"frame": frame, "timestamp": round(timestamp_s, 6),
                "people": people.to_openpose_json()["people"]}
        self._file.write(json.dumps(line) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class NpzWriter(Writer):
    def __init__(self, store: Store, item: Item, fps: float, size: tuple[int, int]) -> None:
        super().__init__(store, output_name(item, "npz"))
        self.fps, self.size = fps, size
        self.frames: list[int] = []
        self.timestamps: list[float] = []
        self.people: list[People] = []

    def write(self, frame, timestamp_s, people, image, peaks) -> None:
        self.frames.append(frame)
        self.timestamps.append(round(timestamp_s, 6))
        self.people.append(people)

    def close(self) -> None:
        if self.people is None:
            return
        arrays = {
            "frames": np.array(self.frames, np.int64),
            "timestamps": np.array(self.timestamps, np.float64),
            "counts": np.array([len(p) for p in self.people], np.int64),
            "keypoints": np.concatenate([p.keypoints for p in self.people]).astype(np.float32),
            "scores": np.concatenate([p.scores for p in self.people]).astype(np.float64),
            "part_counts": np.concatenate([p.part_counts for p in self.people]).astype(np.int64),
            "fps": np.array(self.fps, np.float64),
            "size": np.array(self.size, np.int64),
        }
        if self.people and all(p.person_ids is not None for p in self.people):
            arrays["person_ids"] = np.concatenate([p.person_ids for p in self.people])
        if any(p.filled is not None for p in self.people):
            arrays["filled"] = np.concatenate([
                p.filled if p.filled is not None else np.zeros((len(p), 18), bool)
                for p in self.people])
        write_npz(self.staged, arrays)
        self.people = None


class RenderWriter(Writer):
    """The frames with their skeletons: an MP4 (``mp4v``) for a video, a JPEG for an image."""

    def __init__(self, store: Store, item: Item, fps: float, size: tuple[int, int]) -> None:
        super().__init__(store, render_name(item))
        self.video = None
        if item.kind == "video":
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            self.video = cv2.VideoWriter(str(self.staged), fourcc, fps if fps > 0 else 1.0, size)
            if not self.video.isOpened():
                raise RtposeError(f"cannot write video {self.name}")
        self.size = size

    def write(self, frame, timestamp_s, people, image, peaks) -> None:
        drawn = draw_people(image, people, peaks)
        if self.video is None:
            if not cv2.imwrite(str(self.staged), drawn):
                raise RtposeError(f"cannot write image {self.name}")
            return
        if (drawn.shape[1], drawn.shape[0]) != self.size:
            drawn = cv2.resize(drawn, self.size, interpolation=cv2.INTER_AREA)
        self.video.write(drawn)

    def close(self) -> None:
        if self.video is not None:
            self.video.release()
            self.video = None


def make_writers(store: Store, item: Item, format: str, render: bool, fps: float,
                 size: tuple[int, int],
                 options: datasets.DatasetOptions | None = None) -> list[Writer]:
    """The writers of ``item``'s outputs: ``format``'s, and the rendering if ``render``.
    ``fps``: the processed frames' rate; ``size``: (width, height); ``options``: the dataset
    formats' and offline smoothing's."""
    options = options or datasets.DatasetOptions()
    writers: list[Writer] = []
    try:
        name = output_name(item, format)  # raises for an unknown format
        if format == "openpose":
            writers.append(OpenPoseWriter(store, item))
        elif format == "jsonl":
            writers.append(JsonLinesWriter(store, item))
        elif format == "npz":
            writers.append(NpzWriter(store, item, fps, size))
        elif format == "kinetics":
            writers.append(datasets.KineticsWriter(store, item, name, options, size))
        elif format == "pyskl":
            writers.append(datasets.PysklWriter(store, item, name, options, size))
        elif format == "csv":
            writers.append(datasets.CsvWriter(store, item, name))
        if options.smooth and item.kind == "video":
            writers = [datasets.SmoothedWriters(
                writers, OfflineParams(options.max_gap, options.sigma))]
        if render:
            writers.append(RenderWriter(store, item, fps, size))
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    return writers


def write_npz(path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` with fixed dates in the zip, so that the bytes depend only on
    the arrays (``np.load`` reads it)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for key, array in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with archive.open(info, "w", force_zip64=True) as file:
                np.lib.format.write_array(file, np.ascontiguousarray(array), allow_pickle=False)
