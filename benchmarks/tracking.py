"""Tracking and smoothing on sequences with ground truth made from real people, and on real videos.

    python -m benchmarks.tracking [--frames 60] [--detections cache.pkl]

Sequences: people cut out of coco_mini train2017 images with their COCO segmentation masks
(``pycocotools``), their annotated keypoints moved with them, pasted onto a heavily blurred
photograph (no person left in it) at 640x360, with camera noise in every frame:

- ``crossing``: two people walk towards each other, one passing behind the other;
- ``enter_leave``: one enters from the left, one leaves on the right, one walks towards the
  camera (growing from 0.6 to 1.2 times its size);
- ``crowd``: four people on paths that cross, at two depths;
- ``still``: three people standing still (for jitter).

In every sequence, frames 20-21 are blurred and frame 40 is blank, so detections go missing.
Ground truth: a person is in a frame when at least 25 % of their mask is visible; a keypoint
counts when annotated, inside the frame and not covered by someone in front.

The pipeline (MobileNet-thin, one scale, the default runtime: OpenVINO on a CPU) runs once per
frame; the trackers then run on the same detections: ``PoseTracker`` (rtpose's), the greedy
frame-to-frame OKS matcher (lightweight-human-pose-estimation's method) and norfair's tracker
with its keypoint-voting distance (``pip install norfair``; skipped when missing). Reported:

- IDF1, ID switches and MOTA per tracker, by ``motmetrics`` (``pip install motmetrics``), a
  person matched to a hypothesis when their OKS is at least 0.5;
- the bound that the detections set on IDF1: the IDF1 of perfect association (each person one
  ID, every detection that matches a person given their ID) when every detection is reported,
  and when exactly the false detections are left out;
- keypoint error (pixels, mean over the parts both have, people matched by OKS) raw, with the
  live One Euro filter and with the offline smoother, on the moving sequences; the
  frame-to-frame jitter of the still people (pixels per frame) for each;
- the time of tracking + the live filter per frame at 20 people (generated people);
- a small sweep of the One Euro and offline smoother parameters (how their defaults were
  chosen);
- on sample1.mp4 and sample2.mp4: the number of IDs and the mean track length in frames.

Targets (issue 22): IDF1 >= 0.90; ID switches at most half the greedy matcher's; tracking +
smoothing <= 1 ms per frame at 20 people; the live filter halves the jitter of still people
with a keypoint error on moving people no worse than raw; the offline smoother's error below
raw.
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment
from tqdm import tqdm

from benchmarks.machine import machine_header
from rtpose.people import People
from rtpose.skeleton import COCO_TO_CMU, LEFT_SHOULDER, NECK, NUM_PARTS, RIGHT_SHOULDER
from rtpose.track import (
    GreedyTracker,
    OfflineParams,
    OneEuroFilter,
    OneEuroParams,
    PoseTracker,
    smooth_tracks,
)
from rtpose.track.similarity import box_areas, boxes, oks

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
COCO_MINI = SHARED / "coco_mini"
VIDEOS = [SHARED / "videos" / "sample1.mp4", SHARED / "videos" / "sample2.mp4"]
WEIGHTS = ROOT / "model" / "keras" / "mobilenet_thin.weights.h5"
SIZE = (640, 360)  # width, height
FPS = 30.0
BLURRED, BLANK = (20, 21), (40,)
NOISE = 6.0  # camera noise, grey levels
MIN_VISIBLE = 0.25
MATCH_OKS = 0.5
PEOPLE_FOR_SPEED = 20
TARGET_IDF1, TARGET_MS = 0.90, 1.0


@dataclass
class Cutout:
    image: np.ndarray  # (h, w, 3) BGR crop
    mask: np.ndarray  # (h, w) bool
    keypoints: np.ndarray  # (18, 3) x, y in the crop, visibility (CMU order)


@dataclass
class Walker:
    """A cutout moving from ``start`` to ``end`` (its top-left corner, pixels) while its scale
    goes from ``scales[0]`` to ``scales[1]``; ``depth``: larger is further (pasted first)."""

    cutout: Cutout
    start: tuple[float, float]
    end: tuple[float, float]
    scales: tuple[float, float]
    depth: int


def cutouts(count: int, rng: np.random.Generator, pipeline, backdrop: np.ndarray) -> list[Cutout]:
    """``count`` people of coco_mini train2017 with most keypoints annotated, cut out with
    their masks, scaled to about 230 pixels tall; only those that the pipeline finds alone on
    ``backdrop`` (one person, OKS >= ``MATCH_OKS`` to the annotation), so that the sequences
    measure tracking rather than the detector's misses."""
    from pycocotools.coco import COCO

    coco = COCO(str(COCO_MINI / "annotations" / "person_keypoints_train2017.json"))
    chosen = [a for a in coco.loadAnns(coco.getAnnIds(iscrowd=False))
              if a["num_keypoints"] >= 12 and a["bbox"][3] >= 120
              and isinstance(a["segmentation"], list)]
    chosen = [chosen[i] for i in rng.permutation(len(chosen))]
    out = []
    for ann in chosen:
        if len(out) == count:
            break
        image = cv2.imread(str(COCO_MINI / "train2017" / coco.imgs[ann["image_id"]]["file_name"]))
        mask = coco.annToMask(ann).astype(bool)
        x, y, w, h = (int(round(v)) for v in ann["bbox"])
        scale = 230.0 / h
        crop = cv2.resize(image[y:y + h, x:x + w], None, fx=scale, fy=scale)
        crop_mask = cv2.resize(mask[y:y + h, x:x + w].astype(np.uint8), None, fx=scale,
                               fy=scale, interpolation=cv2.INTER_NEAREST).astype(bool)
        coco_kp = np.array(ann["keypoints"], float).reshape(17, 3)
        keypoints = np.zeros((NUM_PARTS, 3))
        keypoints[list(COCO_TO_CMU), :2] = (coco_kp[:, :2] - (x, y)) * scale
        keypoints[list(COCO_TO_CMU), 2] = coco_kp[:, 2] > 0
        if keypoints[LEFT_SHOULDER, 2] and keypoints[RIGHT_SHOULDER, 2]:
            keypoints[NECK] = (keypoints[LEFT_SHOULDER] + keypoints[RIGHT_SHOULDER]) / 2
        cutout = Cutout(crop, crop_mask, keypoints)
        alone = Walker(cutout, (SIZE[0] / 2 - crop.shape[1] / 2, 60), (0, 0), (1.0, 1.0), 0)
        image, truth = next(render([alone], 1, backdrop, rng))
        found = pipeline(image)
        if len(truth) == 1 and len(found) == 1 and len(match(truth, found)[2]) == 1:
            out.append(cutout)
    if len(out) < count:
        raise SystemExit(f"only {len(out)} of coco_mini's people are found alone; {count} "
                         "needed")
    return out


def background(rng: np.random.Generator) -> np.ndarray:
    """A coco_mini val2017 photograph blurred until no person is left in it."""
    files = sorted((COCO_MINI / "val2017").glob("*.jpg"))
    image = cv2.resize(cv2.imread(str(files[rng.integers(len(files))])), SIZE)
    return cv2.GaussianBlur(image, (0, 0), 25)


def scenes(people: list[Cutout], frames: int) -> dict[str, list[Walker]]:
    w, h = SIZE
    p = people
    return {
        "crossing": [Walker(p[0], (20, 90), (w - 160, 90), (1.0, 1.0), 0),
                     Walker(p[1], (w - 160, 80), (20, 80), (0.95, 0.95), 1)],
        "enter_leave": [Walker(p[2], (-160, 100), (w * 0.45, 100), (1.0, 1.0), 0),
                        Walker(p[3], (w * 0.55, 110), (w + 40, 110), (1.0, 1.0), 1),
                        Walker(p[4], (w * 0.3, 150), (w * 0.25, 30), (0.6, 1.2), 2)],
        "crowd": [Walker(p[5], (0, 60), (w - 120, 120), (0.9, 0.9), 1),
                  Walker(p[6], (w - 120, 120), (0, 60), (1.0, 1.0), 0),
                  Walker(p[7], (w * 0.35, 40), (w * 0.7, 130), (0.8, 0.8), 2),
                  Walker(p[8], (w * 0.75, 30), (w * 0.2, 110), (0.85, 0.85), 3)],
        "still": [Walker(p[9], (40, 90), (40, 90), (1.0, 1.0), 0),
                  Walker(p[10], (w * 0.4, 80), (w * 0.4, 80), (0.9, 0.9), 0),
                  Walker(p[11], (w * 0.7, 100), (w * 0.7, 100), (0.95, 0.95), 0)],
    }


def render(walkers: list[Walker], frames: int, backdrop: np.ndarray, rng: np.random.Generator):
    """Per frame: the image and the ground truth {person: (18, 3) keypoints, visibility}."""
    for t in range(frames):
        image = backdrop.copy()
        owner = np.full(image.shape[:2], -1)
        placed = {}
        for k in sorted(range(len(walkers)), key=lambda k: -walkers[k].depth):
            walker = walkers[k]
            a = t / max(frames - 1, 1)
            scale = walker.scales[0] + a * (walker.scales[1] - walker.scales[0])
            x0, y0 = np.array(walker.start) + a * (np.array(walker.end) - walker.start)
            crop = cv2.resize(walker.cutout.image, None, fx=scale, fy=scale)
            mask = cv2.resize(walker.cutout.mask.astype(np.uint8), None, fx=scale, fy=scale,
                              interpolation=cv2.INTER_NEAREST).astype(bool)
            _paste(image, owner, crop, mask, int(round(x0)), int(round(y0)), k)
            keypoints = walker.cutout.keypoints.copy()
            keypoints[:, :2] = keypoints[:, :2] * scale + (int(round(x0)), int(round(y0)))
            placed[k] = (keypoints, mask.sum())
        truth = {}
        for k, (keypoints, area) in placed.items():
            if (owner == k).sum() < MIN_VISIBLE * area:
                continue
            xy = keypoints[:, :2].round().astype(int)
            inside = ((xy >= 0) & (xy < SIZE)).all(axis=1)
            seen = np.zeros(NUM_PARTS, bool)
            seen[inside] = owner[xy[inside, 1], xy[inside, 0]] == k
            # a part on the person's own edge may fall just off their mask: it counts unless
            # someone in front covers it
            covered = np.zeros(NUM_PARTS, bool)
            covered[inside] = owner[xy[inside, 1], xy[inside, 0]] > -1
            visible = (keypoints[:, 2] > 0) & inside & (seen | ~covered)
            truth[k] = np.concatenate([keypoints[:, :2], visible[:, None]], axis=1)
        noisy = image.astype(np.float32) + rng.normal(0, NOISE, image.shape)
        image = np.clip(noisy, 0, 255).astype(np.uint8)
        if t in BLURRED:
            image = cv2.GaussianBlur(image, (0, 0), 6)
        if t in BLANK:
            image[:] = 0
        yield image, truth


def _paste(image, owner, crop, mask, x, y, k) -> None:
    h, w = mask.shape
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, image.shape[1]), min(y + h, image.shape[0])
    if x0 >= x1 or y0 >= y1:
        return
    m = mask[y0 - y:y1 - y, x0 - x:x1 - x]
    image[y0:y1, x0:x1][m] = crop[y0 - y:y1 - y, x0 - x:x1 - x][m]
    owner[y0:y1, x0:x1][m] = k


def make_pipeline():
    from rtpose.tools.common import add_inference_args, add_model_args, pipeline_from_args

    parser = argparse.ArgumentParser()
    add_model_args(parser)
    add_inference_args(parser)
    parser.set_defaults(scales=(1.0,))
    return pipeline_from_args(parser.parse_args(["--model", str(WEIGHTS)]))


def detect(frames: int, seed: int) -> dict:
    """Every sequence's detections and ground truth, and the real videos' detections."""
    rng = np.random.default_rng(seed)
    pipeline = make_pipeline()
    people = cutouts(12, rng, pipeline, background(rng))
    data: dict = {"scenes": {}, "videos": {}}
    for name, walkers in scenes(people, frames).items():
        backdrop = background(rng)
        sequence = []
        for image, truth in tqdm(render(walkers, frames, backdrop, rng), total=frames,
                                 desc=name, leave=False):
            sequence.append((pipeline(image), truth))
        data["scenes"][name] = sequence
    for video in VIDEOS:
        capture = cv2.VideoCapture(str(video))
        detections = []
        with tqdm(total=int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), desc=video.name,
                  leave=False) as bar:
            while (read := capture.read())[0]:
                detections.append(pipeline(read[1]))
                bar.update()
        data["videos"][video.name] = detections
    return data


class NorfairTracker:
    """norfair's tracker with its keypoint-voting distance, behind ``update``."""

    def __init__(self) -> None:
        import logging

        from norfair import Tracker
        from norfair.distances import create_keypoints_voting_distance

        logging.getLogger().setLevel(logging.ERROR)  # its advice on vectorised distances

        self.tracker = Tracker(
            distance_function=create_keypoints_voting_distance(
                keypoint_distance_threshold=30, detection_threshold=0.05),
            distance_threshold=NUM_PARTS - 3, detection_threshold=0.05,
            initialization_delay=0, hit_counter_max=15)

    def update(self, people: People, frame: int | None = None) -> People:
        from norfair import Detection

        detections = [Detection(points=xy, scores=conf, data=i)
                      for i, (xy, conf) in enumerate(zip(people.xy, people.conf, strict=True))]
        ids = np.full(len(people), -1, np.int64)
        for tracked in self.tracker.update(detections=detections):
            if tracked.last_detection in detections and tracked.id is not None:
                ids[tracked.last_detection.data] = tracked.id
        unmatched = ids < 0  # not yet a track: reported without an ID (left out)
        return people.take(~unmatched).with_ids(ids[~unmatched])


TRACKERS = {"rtpose (OKS+IoU, Hungarian, velocity)": PoseTracker,
            "greedy frame-to-frame OKS": GreedyTracker,
            "norfair (keypoint voting)": NorfairTracker}


def truth_people(truth: dict) -> tuple[list[int], np.ndarray, np.ndarray]:
    ids = sorted(truth)
    keypoints = np.array([truth[k] for k in ids]).reshape(-1, NUM_PARTS, 3)
    return ids, keypoints[:, :, :2], keypoints[:, :, 2] > 0


def match(truth: dict, people: People) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """Ground-truth people against hypotheses: their ids, (G, H) OKS, and the pairs of an
    OKS-maximising match with OKS >= ``MATCH_OKS``."""
    ids, xy, present = truth_people(truth)
    similarity = oks(xy, present, people.xy, people.present, box_areas(boxes(xy, present)))
    rows, cols = linear_sum_assignment(-similarity)
    keep = similarity[rows, cols] >= MATCH_OKS
    return ids, similarity, rows[keep], cols[keep]


def mot_metrics(runs: dict[str, list[tuple[dict, People]]]) -> dict[str, float]:
    """IDF1, ID switches and MOTA over all sequences (motmetrics)."""
    import motmetrics as mm

    accumulators, names = [], []
    for name, sequence in runs.items():
        acc = mm.MOTAccumulator(auto_id=True)
        for truth, people in sequence:
            ids, similarity, _, _ = match(truth, people)
            distance = np.where(similarity >= MATCH_OKS, 1 - similarity, np.nan)
            acc.update(ids, people.person_ids.tolist(), distance)
        accumulators.append(acc)
        names.append(name)
    host = mm.metrics.create()
    summary = host.compute_many(accumulators, names=names, generate_overall=True,
                                metrics=["idf1", "num_switches", "mota", "recall",
                                         "precision"])
    overall = summary.loc["OVERALL"]
    return {"idf1": float(overall["idf1"]), "switches": int(overall["num_switches"]),
            "mota": float(overall["mota"]), "recall": float(overall["recall"]),
            "precision": float(overall["precision"])}


def keypoint_error(sequence: list[tuple[dict, People]], filled: bool = False) -> float:
    """Mean pixel distance over the matched people's parts both have: the parts found, or
    (``filled``) the parts the offline smoother filled in."""
    errors = []
    for truth, people in sequence:
        ids, _, rows, cols = match(truth, people)
        _, xy, present = truth_people(truth)
        was_filled = (people.filled if people.filled is not None
                      else np.zeros(people.present.shape, bool))
        for r, c in zip(rows, cols, strict=True):
            both = present[r] & people.present[c] & (was_filled[c] == filled)
            errors.extend(np.linalg.norm(xy[r, both] - people.xy[c, both], axis=1))
    return float(np.mean(errors)) if errors else float("nan")


def jitter(frames: list[People]) -> float:
    """Mean frame-to-frame move of each part of each person ID (pixels per frame)."""
    moves, previous = [], {}
    for people in frames:
        current = {}
        for person_id, keypoints in zip(people.person_ids.tolist(), people.keypoints,
                                        strict=True):
            current[person_id] = keypoints
            if person_id in previous:
                both = (keypoints[:, 2] > 0) & (previous[person_id][:, 2] > 0)
                moves.extend(np.linalg.norm(keypoints[both, :2] - previous[person_id][both, :2],
                                            axis=1))
        previous = current
    return float(np.mean(moves))


def track(detections: list[People], make) -> list[People]:
    tracker = make()
    return [tracker.update(people, t) for t, people in enumerate(detections)]


def live(tracked: list[People], params: OneEuroParams) -> list[People]:
    one_euro = OneEuroFilter(params)
    return [one_euro(people, t / FPS) for t, people in enumerate(tracked)]


def smoothing_figures(tracked: dict[str, list[People]], truths: dict[str, list[dict]],
                      one_euro: OneEuroParams, offline: OfflineParams) -> dict[str, float]:
    """Keypoint error on the moving sequences and jitter on the still one, raw, live, offline."""
    moving = [name for name in tracked if name != "still"]
    variants = {"raw": lambda f: f, "live": lambda f: live(f, one_euro),
                "offline": lambda f: smooth_tracks(f, offline)}
    figures = {}
    for variant, apply in variants.items():
        sequence = [pair for name in moving
                    for pair in zip(truths[name], apply(tracked[name]), strict=True)]
        figures[f"error_{variant}"] = keypoint_error(sequence)
        figures[f"jitter_{variant}"] = jitter(apply(tracked["still"]))
        if variant == "offline":
            figures["error_filled"] = keypoint_error(sequence, filled=True)
    return figures


def generated_people(frames: int) -> list[People]:
    rng = np.random.default_rng(0)
    n = PEOPLE_FOR_SPEED
    start = rng.uniform((0, 0), (1800, 900), (n, 2))
    velocity = rng.normal(0, 3, (n, 2))
    shape = rng.normal(0, 25, (n, NUM_PARTS, 2)) + np.linspace(-90, 90, NUM_PARTS)[:, None]
    out = []
    for t in range(frames):
        keypoints = np.ones((n, NUM_PARTS, 3)) * 0.7
        keypoints[:, :, :2] = (start + velocity * t)[:, None] + shape \
            + rng.normal(0, 1.5, (n, NUM_PARTS, 2))
        out.append(People(keypoints, np.full(n, 20.0), np.full(n, NUM_PARTS)))
    return out


def time_per_frame(make, smooth: bool, frames: list[People]) -> float:
    """Median milliseconds per frame of ``make()``'s tracker (and the One Euro filter)."""
    tracker = make()
    one_euro = OneEuroFilter() if smooth else None
    times = []
    for t, people in enumerate(frames):
        start = time.perf_counter()
        tracked = tracker.update(people, t)
        if one_euro is not None:
            one_euro(tracked, t / FPS)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times[10:]))


def sweep(tracked, truths) -> list[tuple[str, float, float]]:
    """One Euro (min_cutoff, beta) and offline (max_gap, sigma) settings: their moving error
    and still jitter."""
    rows = []
    for trend in (False, True):
        for min_cutoff in (0.3, 1.0, 2.0):
            for beta in (0.0, 1.0, 10.0, 30.0):
                params = OneEuroParams(min_cutoff, beta, trend=trend)
                f = smoothing_figures(tracked, truths, params, OfflineParams())
                rows.append((f"one euro min_cutoff {min_cutoff} beta {beta}"
                             f"{'' if trend else ' (no trend)'}", f["error_live"],
                             f["jitter_live"]))
    for sigma in (1.0, 1.5, 2.5):
        for max_gap in (0, 5):
            f = smoothing_figures(tracked, truths, OneEuroParams(), OfflineParams(max_gap, sigma))
            rows.append((f"offline max_gap {max_gap} sigma {sigma}", f["error_offline"],
                         f["jitter_offline"]))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60, help="frames per sequence")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--detections", type=Path, default=None,
                        help="keep the detections in this file and reuse them if present")
    parser.add_argument("--sweep", action="store_true",
                        help="also print the smoothing parameter sweep")
    args = parser.parse_args(argv)
    print(machine_header())
    makers = dict(TRACKERS)
    try:
        import norfair  # noqa: F401
    except ImportError:
        print("norfair is not installed (pip install norfair): its row is left out")
        del makers["norfair (keypoint voting)"]

    if args.detections is not None and args.detections.is_file():
        data = pickle.loads(args.detections.read_bytes())
    else:
        start = time.perf_counter()
        data = detect(args.frames, args.seed)
        print(f"pipeline on {sum(map(len, data['scenes'].values()))} generated and "
              f"{sum(map(len, data['videos'].values()))} video frames: "
              f"{time.perf_counter() - start:.0f} s")
        if args.detections is not None:
            args.detections.write_bytes(pickle.dumps(data))
    truths = {name: [truth for _, truth in seq] for name, seq in data["scenes"].items()}
    detections = {name: [people for people, _ in seq] for name, seq in data["scenes"].items()}

    print(f"\n{len(detections)} sequences of {args.frames} frames at {SIZE[0]}x{SIZE[1]}, "
          f"MobileNet-thin at one scale; people matched at OKS >= {MATCH_OKS}")
    header = ("| tracker | IDF1 | ID switches | MOTA | recall / precision | "
              "error raw / live / offline (px) | "
              "still jitter raw / live / offline (px/frame) | ms/frame at 20 people "
              "(+ live filter) |")
    print(header)
    print("|---" * 8 + "|")
    results = {}
    speed_frames = generated_people(300)
    for name, make in makers.items():
        tracked = {scene: track(frames, make) for scene, frames in detections.items()}
        mot = mot_metrics({scene: list(zip(truths[scene], tracked[scene], strict=True))
                           for scene in tracked})
        figures = smoothing_figures(tracked, truths, OneEuroParams(), OfflineParams())
        ms = time_per_frame(make, False, speed_frames)
        ms_smooth = time_per_frame(make, True, speed_frames)
        results[name] = {**mot, **figures, "ms": ms, "ms_smooth": ms_smooth}
        print(f"| {name} | {mot['idf1']:.3f} | {mot['switches']} | {mot['mota']:.3f} | "
              f"{mot['recall']:.3f} / {mot['precision']:.3f} | "
              f"{figures['error_raw']:.2f} / {figures['error_live']:.2f} / "
              f"{figures['error_offline']:.2f} | {figures['jitter_raw']:.2f} / "
              f"{figures['jitter_live']:.2f} / {figures['jitter_offline']:.2f} | "
              f"{ms:.3f} ({ms_smooth:.3f}) |")

    found = mot_metrics({scene: [(truth, people.with_ids(np.arange(len(people))))
                                 for truth, people in zip(truths[scene], frames, strict=True)]
                         for scene, frames in detections.items()})
    recall, precision = found["recall"], found["precision"]
    print(f"the detections: recall {recall:.3f}, precision {precision:.3f}; with perfect "
          f"association IDF1 cannot exceed {2 * recall * precision / (recall + precision):.3f} "
          f"reporting every detection, {2 * recall / (1 + recall):.3f} leaving out exactly the "
          f"false ones")
    ours = results[next(iter(makers))]
    print(f"error of the keypoints the offline smoother filled in: {ours['error_filled']:.2f} px")
    print("\n| video | frames | tracker | IDs | mean track length (frames) |")
    print("|---|---|---|---|---|")
    for video, frames in data["videos"].items():
        for name, make in makers.items():
            ids = np.concatenate([p.person_ids for p in track(frames, make)])
            _, lengths = np.unique(ids, return_counts=True)
            print(f"| {video} | {len(frames)} | {name} | {len(lengths)} | "
                  f"{lengths.mean() if len(lengths) else 0:.1f} |")

    if args.sweep:
        ours = {scene: track(frames, PoseTracker) for scene, frames in detections.items()}
        print("\n| smoothing setting | moving error (px) | still jitter (px/frame) |")
        print("|---|---|---|")
        for label, error, still in sweep(ours, truths):
            print(f"| {label} | {error:.2f} | {still:.2f} |")

    ours, greedy = results[next(iter(TRACKERS))], results["greedy frame-to-frame OKS"]
    checks = [
        (f"IDF1 >= {TARGET_IDF1}", ours["idf1"] >= TARGET_IDF1, f"{ours['idf1']:.3f}"),
        ("ID switches <= half the greedy matcher's",
         ours["switches"] <= greedy["switches"] / 2, f"{ours['switches']} vs "
         f"{greedy['switches']}"),
        (f"tracking + smoothing <= {TARGET_MS} ms/frame at {PEOPLE_FOR_SPEED} people",
         ours["ms_smooth"] <= TARGET_MS, f"{ours['ms_smooth']:.3f} ms"),
        ("live filter halves the still jitter", ours["jitter_live"] <= ours["jitter_raw"] / 2,
         f"{ours['jitter_raw']:.2f} -> {ours['jitter_live']:.2f}"),
        ("live filter's moving error no worse than raw",
         ours["error_live"] <= ours["error_raw"],
         f"{ours['error_raw']:.2f} -> {ours['error_live']:.2f}"),
        ("offline smoother's error below raw", ours["error_offline"] < ours["error_raw"],
         f"{ours['error_raw']:.2f} -> {ours['error_offline']:.2f}"),
    ]
    print()
    for text, met, value in checks:
        print(f"target {text}: {'met' if met else 'MISSED'} ({value})")
    print(json.dumps({name: {k: round(v, 4) for k, v in r.items()}
                      for name, r in results.items()}))


if __name__ == "__main__":
    main()
