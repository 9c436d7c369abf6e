"""Skeleton datasets for action recognition: ``kinetics``, ``pyskl`` and ``csv`` outputs, the
corpus-wide files made at the end of a run, and reading them back.

- ``kinetics``: ST-GCN's Kinetics-skeleton layout, ``a/x.json`` per video::

      {"data": [{"frame_index": 1, "skeleton": [{"pose": [x0, y0, ..., x17, y17],
                                                 "score": [s0, ..., s17], "person_id": 0}]}],
       "label": "a", "label_index": 0, "width": 960, "height": 540}

  ``frame_index`` counts the processed frames from 1; x and y are divided by the frame's width
  and height (4 decimals); a missing part is 0, 0 with score 0; ``person_id``, ``width`` and
  ``height`` are rtpose's (ST-GCN's reader ignores them). At the end of the run,
  ``kinetics_label.json`` holds ``{video_id: {"has_skeleton", "label", "label_index"}}`` for
  every done input (``video_id``: the file name without its extension).
- ``pyskl``: the pyskl / mmaction2 skeleton annotation of each input, ``a/x.pkl``, and at the end
  of the run the corpus pickle ``pyskl.pkl``, ``{"split": {"all": [frame_dir, ...]},
  "annotations": [...]}``, each annotation ``{"frame_dir", "total_frames", "img_shape": (h, w),
  "original_shape", "label", "keypoint": float16 (M, T, V, 2) pixels, "keypoint_score":
  float16 (M, T, V)}``; V is 17 in COCO's order (``--layout coco17``, pyskl's pretrained models;
  ``COCO_FROM_OPENPOSE``) or the 18 OpenPose parts (``openpose18``); the M (``--max-persons``)
  persons are the tracks seen in the most frames, then of the highest mean score (untracked:
  each frame's best scored). The corpus files are written atomically from the manifest's done
  inputs, so a killed run resumed later still makes them whole.
- ``csv``: ``a/x.csv``, one row per person per frame: ``input, frame, timestamp, person_id``,
  then ``<part>_x, <part>_y, <part>_score`` for the 18 parts (``rtpose.skeleton.PARTS``).

The label of an input is its parent folder's name, or its entry in ``--labels FILE`` (a JSON
object, or lines ``video,label``; keyed by the input's name or its file name without
extension); ``label_index`` is its position in ``classes``, the run's sorted labels.
"""

from __future__ import annotations

import csv
import json
import pickle
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from rtpose.errors import RtposeError
from rtpose.extract.inputs import Item
from rtpose.extract.store import Store
from rtpose.people import People
from rtpose.skeleton import NUM_PARTS, PARTS
from rtpose.track import OfflineParams, smooth_tracks

DATASET_FORMATS = ("kinetics", "pyskl", "csv")
LAYOUTS = ("coco17", "openpose18")
# OpenPose part of each COCO keypoint (pyskl's 17-part layout).
COCO_FROM_OPENPOSE = (0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10)
KINETICS_LABELS = "kinetics_label.json"
PYSKL_CORPUS = "pyskl.pkl"
CSV_HEADER = ("input", "frame", "timestamp", "person_id",
              *(f"{part}_{field}" for part in PARTS for field in ("x", "y", "score")))
DECIMALS = 4


@dataclass(frozen=True)
class DatasetOptions:
    """The options of the dataset formats and of offline smoothing (all formats): ``layout``
    and ``max_persons`` (pyskl), ``classes`` (sorted labels) and ``labels`` (the labels file,
    or None: folder names), ``smooth`` with ``max_gap`` and ``sigma`` (``rtpose.track``)."""

    layout: str = "coco17"
    max_persons: int = 2
    classes: tuple[str, ...] = ()
    labels: str | None = None
    smooth: bool = False
    max_gap: int = OfflineParams().max_gap
    sigma: float = OfflineParams().sigma


def read_labels(path: str | Path) -> dict[str, str]:
    """A labels file: a JSON object, or text lines ``video,label`` (or tab-separated)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        if str(path).endswith(".json"):
            labels = json.loads(text)
            if not isinstance(labels, dict):
                raise ValueError("not a JSON object")
            return {str(k): str(v) for k, v in labels.items()}
        rows = [row for row in csv.reader(text.replace("\t", ",").splitlines()) if row]
        return {row[0].strip(): row[1].strip() for row in rows if len(row) >= 2}
    except (OSError, ValueError) as e:
        raise RtposeError(f"cannot read labels {path}: {e}") from None


def label_of(item: Item, labels: dict[str, str] | None) -> str:
    """The input's label: its entry in ``labels`` (by name, then by file stem), else its parent
    folder's name."""
    if labels is None:
        return Path(item.path).parent.name
    stem = PurePosixPath(item.stem).name
    for key in (item.name, stem):
        if key in labels:
            return labels[key]
    raise RtposeError(f"no label for {item.name} in the labels file")


def dataset_classes(items: list[Item], labels_file: str | None) -> tuple[str, ...]:
    """The sorted labels of the run's inputs."""
    labels = read_labels(labels_file) if labels_file else None
    if labels is not None:
        return tuple(sorted(set(labels.values())))
    return tuple(sorted({label_of(item, None) for item in items}))


class _Buffered:
    """A writer that keeps every frame and writes its file when the input is complete."""

    def __init__(self, store: Store, name: str) -> None:
        self.store, self.name = store, name
        store.clean_stale(name)
        self.staged = store.stage(name)
        self.frames: list[tuple[int, float, People]] = []

    def write(self, frame, timestamp_s, people, image, peaks) -> None:
        self.frames.append((frame, timestamp_s, people))

    def close(self) -> None:
        if self.frames is not None:
            self.finish(self.frames)
            self.frames = None

    def finish(self, frames: list[tuple[int, float, People]]) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        self.close()
        self.store.publish(self.staged, self.name)

    def abort(self) -> None:
        self.frames = None
        self.store.discard(self.staged)


class _Labelled(_Buffered):
    def __init__(self, store: Store, item: Item, name: str, options: DatasetOptions,
                 size: tuple[int, int]) -> None:
        self.label = label_of(item, read_labels(options.labels) if options.labels else None)
        if self.label not in options.classes:
            raise RtposeError(f"label {self.label!r} of {item.name} is not among the run's "
                              "classes")
        self.label_index = options.classes.index(self.label)
        self.options, self.size, self.item = options, size, item
        super().__init__(store, name)


class KineticsWriter(_Labelled):
    def finish(self, frames) -> None:
        width, height = self.size
        data = []
        for k, (_, _, people) in enumerate(frames, start=1):
            skeletons = []
            for i in range(len(people)):
                xy = people.xy[i] / np.array([width, height])
                present = people.present[i]
                xy[~present] = 0.0
                skeleton = {"pose": np.round(xy, DECIMALS).ravel().tolist(),
                            "score": np.round(people.conf[i], DECIMALS).tolist()}
                if people.person_ids is not None:
                    skeleton["person_id"] = int(people.person_ids[i])
                skeletons.append(skeleton)
            data.append({"frame_index": k, "skeleton": skeletons})
        video = {"data": data, "label": self.label, "label_index": self.label_index,
                 "width": width, "height": height}
        self.staged.write_text(json.dumps(video) + "\n", encoding="utf-8")


class PysklWriter(_Labelled):
    def finish(self, frames) -> None:
        width, height = self.size
        keypoints = people_array([people for _, _, people in frames],
                                 self.options.max_persons)  # (M, T, 18, 3)
        if self.options.layout == "coco17":
            keypoints = keypoints[:, :, COCO_FROM_OPENPOSE]
        annotation = {
            "frame_dir": self.item.stem, "total_frames": len(frames),
            "img_shape": (height, width), "original_shape": (height, width),
            "label": self.label_index,
            "keypoint": keypoints[..., :2].astype(np.float16),
            "keypoint_score": keypoints[..., 2].astype(np.float16),
        }
        with open(self.staged, "wb") as file:
            pickle.dump(annotation, file, protocol=4)


def people_array(frames: list[People], max_persons: int) -> np.ndarray:
    """(M, T, 18, 3) the ``max_persons`` persons of the most frames (then the highest mean
    score), by person ID; untracked people: each frame's best scored. M is at least 1 (a
    video without people gives zeros)."""
    ids = [p.person_ids for p in frames if len(p)]
    if ids and all(i is not None for i in ids):
        all_ids = np.concatenate(ids)
        all_scores = np.concatenate([p.scores for p in frames if len(p)])
        unique, frames_seen = np.unique(all_ids, return_counts=True)
        mean = np.array([all_scores[all_ids == u].mean() for u in unique])
        chosen = unique[np.lexsort((-mean, -frames_seen))][:max_persons]
        rank = {int(person): m for m, person in enumerate(chosen)}
        slot = [np.array([rank.get(int(i), -1) for i in (p.person_ids if len(p) else [])],
                         np.int64) for p in frames]
    else:
        chosen = range(min(max(map(len, frames), default=0), max_persons))
        slot = [np.where(np.argsort(np.argsort(-p.scores)) < max_persons,
                         np.argsort(np.argsort(-p.scores)), -1) for p in frames]
    out = np.zeros((max(len(chosen), 1), len(frames), NUM_PARTS, 3))
    for t, (people, where) in enumerate(zip(frames, slot, strict=True)):
        keep = where >= 0
        out[where[keep], t] = people.keypoints[keep]
    return out


class CsvWriter(_Buffered):
    """Rows as they come; see the module docstring."""

    def __init__(self, store: Store, item: Item, name: str) -> None:
        super().__init__(store, name)
        self.input = item.name
        self._file = open(self.staged, "w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._file)
        self._csv.writerow(CSV_HEADER)

    def write(self, frame, timestamp_s, people, image, peaks) -> None:
        ids = people.person_ids if people.person_ids is not None else np.full(len(people), -1)
        for person_id, keypoints in zip(ids.tolist(), people.keypoints, strict=True):
            self._csv.writerow([self.input, frame, round(timestamp_s, 6), person_id,
                                *keypoints.ravel().tolist()])

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def abort(self) -> None:
        self.close()
        self.store.discard(self.staged)


class SmoothedWriters:
    """``writers`` fed at the end with the whole input smoothed (``rtpose.track.offline``)."""

    def __init__(self, writers: list, params: OfflineParams) -> None:
        self.writers, self.params = writers, params
        self.frames: list[tuple[int, float, People]] = []

    def write(self, frame, timestamp_s, people, image, peaks) -> None:
        self.frames.append((frame, timestamp_s, people))

    def commit(self) -> None:
        smoothed = smooth_tracks([people for _, _, people in self.frames], self.params)
        for (frame, timestamp_s, _), people in zip(self.frames, smoothed, strict=True):
            for writer in self.writers:
                writer.write(frame, timestamp_s, people, None, None)
        for writer in self.writers:
            writer.commit()

    def abort(self) -> None:
        for writer in self.writers:
            writer.abort()


def finish_corpus(format: str, store: Store, records: dict[str, dict[str, Any]],
                  options: DatasetOptions) -> str | None:
    """The corpus file of ``format`` (``kinetics_label.json``, ``pyskl.pkl``) made from the
    done inputs' outputs; its name, or None for a format without one."""
    done = sorted((name, record["output"]) for name, record in records.items()
                  if record["status"] == "done")
    if format == "kinetics":
        labels = {}
        for _, output in done:
            video = json.loads(_read_output(store, output))
            labels[PurePosixPath(output).stem] = {
                "has_skeleton": any(frame["skeleton"] for frame in video["data"]),
                "label": video["label"], "label_index": video["label_index"]}
        return _publish(store, KINETICS_LABELS, (json.dumps(labels, indent=1) + "\n").encode())
    if format == "pyskl":
        annotations = [pickle.loads(_read_output(store, output)) for _, output in done]
        corpus = {"split": {"all": [a["frame_dir"] for a in annotations]},
                  "annotations": annotations}
        return _publish(store, PYSKL_CORPUS, pickle.dumps(corpus, protocol=4))
    return None


def _read_output(store: Store, name: str) -> bytes:
    if store.local:
        return (Path(store.location) / name).read_bytes()
    import fsspec

    with fsspec.open(f"{store.location.rstrip('/')}/{name}", "rb") as file:
        return file.read()


def _publish(store: Store, name: str, data: bytes) -> str:
    store.clean_stale(name)
    staged = store.stage(name)
    try:
        staged.write_bytes(data)
        store.publish(staged, name)
    except BaseException:
        store.discard(staged)
        raise
    return name


def load_kinetics(path: Path) -> tuple[np.ndarray, list[People]]:
    """A Kinetics-skeleton JSON: frames (1-based ``frame_index``) and their ``People`` in
    pixels (``width``/``height`` from the file)."""
    video = json.loads(path.read_text(encoding="utf-8"))
    scale = np.array([video.get("width", 1), video.get("height", 1)], np.float64)
    frames, people = [], []
    for frame in video["data"]:
        skeletons = frame["skeleton"]
        keypoints = np.zeros((len(skeletons), NUM_PARTS, 3))
        for i, skeleton in enumerate(skeletons):
            keypoints[i, :, :2] = np.reshape(skeleton["pose"], (NUM_PARTS, 2)) * scale
            keypoints[i, :, 2] = skeleton["score"]
        ids = [s.get("person_id", -1) for s in skeletons]
        frames.append(frame["frame_index"])
        people.append(_people(keypoints, ids))
    return np.array(frames, np.int64), people


def load_pyskl_annotation(annotation: dict[str, Any]) -> list[People]:
    """One pyskl annotation as ``People`` per frame; the person ID is the person's index m
    (coco17: the neck, which COCO lacks, is missing)."""
    keypoint = np.asarray(annotation["keypoint"], np.float64)  # (M, T, V, 2)
    score = np.asarray(annotation["keypoint_score"], np.float64)
    m, t, v = score.shape
    full = np.zeros((m, t, NUM_PARTS, 3))
    parts = list(COCO_FROM_OPENPOSE) if v == len(COCO_FROM_OPENPOSE) else list(range(NUM_PARTS))
    full[:, :, parts, :2] = keypoint
    full[:, :, parts, 2] = score
    people = []
    for frame in range(t):
        seen = (full[:, frame, :, 2] > 0).any(axis=1)
        people.append(_people(full[seen, frame], np.flatnonzero(seen)))
    return people


def load_csv(path: Path) -> tuple[np.ndarray, np.ndarray, list[People]]:
    """A ``csv`` output: frames, timestamps and ``People`` per frame (frames without people
    have no rows and are absent)."""
    with open(path, newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file))
    if not rows or tuple(rows[0]) != CSV_HEADER:
        raise ValueError("not an rtpose pose CSV (header)")
    body = np.array([row[1:] for row in rows[1:]], np.float64).reshape(-1, len(CSV_HEADER) - 1)
    frames, first = np.unique(body[:, 0].astype(np.int64), return_index=True)
    people = [_people(body[body[:, 0] == f, 3:].reshape(-1, NUM_PARTS, 3),
                      body[body[:, 0] == f, 2]) for f in frames]
    return frames, body[first, 1], people


def _people(keypoints: np.ndarray, ids) -> People:
    """People read back without person scores (0) and with their parts present counted."""
    ids = np.asarray(ids, np.int64)
    return People(keypoints, np.zeros(len(keypoints)),
                  np.count_nonzero(keypoints[:, :, 2] > 0, axis=1).astype(np.int64),
                  ids if (ids >= 0).any() else None)
