"""Image → people per stage on coco_mini val: the fast decoder, the faithful one and the loop
version of the original, with AP; the 21-person image alone; peak memory at 1920x1080.

    python -m benchmarks.pipeline [--limit N] [--repeats 5] [--decoders fast faithful loops]
                                    [--runtime keras|onnx] [--model PATH] [--no-memory]

For each setting (1 scale; 4 scales 0.5, 1, 1.5, 2) and each val image, the network runs once
(the compiled runtime of ``rtpose.runtime``, resizing and padding included), then every decoder
decodes the same outputs, the fast one first (as in the pipeline, straight after the network):

- ``fast``: ``rtpose.decode``'s fast decoder (the pipeline's default). Its "maps" stage
  up-samples nothing: it is the lookup, or for a new image size the construction, of its
  operators.
- ``faithful``: ``rtpose.decode``'s faithful decoder (up-sampling, peaks, association).
- ``loops``: the same up-sampling, then ``tests/reference_grouping.py``, the original's
  algorithm as plain Python loops.

Prints per setting and decoder the mean and median ms of each stage (network, maps, peaks,
association, post-processing = the last three, total), the post-processing time relative to the
fast decoder's, the COCO keypoint AP, and how many images found other people than the faithful
decoder. Then the 21-person image ``000000217285.jpg`` alone (``--repeats`` runs after one
warm-up, best and median), and the peak resident memory of a fresh process that runs the
pipeline once on a 1920x1080 image (the 21-person image enlarged) at 4 scales, per decoder.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from benchmarks.machine import machine_header
from rtpose.coco.evaluate import load_coco, score_keypoints
from rtpose.config import CMU_GROUPING, InferenceParams
from rtpose.decode.faithful import average_maps
from rtpose.people import People
from rtpose.pipeline import NetworkOutputs, PosePipeline
from rtpose.tools.common import add_model_args, network_from_args
from tests.reference_grouping import find_peaks_loops, group_peaks_loops

COCO_MINI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco_mini"
CROWD_IMAGE = "000000217285.jpg"  # 21 people
SETTINGS = {"1 scale": (1.0,), "4 scales": (0.5, 1.0, 1.5, 2.0)}
DECODERS = ("fast", "faithful", "loops")
STAGES = ("network", "maps", "peaks", "association", "post", "total")
MEMORY_SHAPE = (1080, 1920)


@dataclass
class Record:
    """Per image: stage times (s), people, and the COCO results of one decoder."""

    times: list[dict[str, float]] = field(default_factory=list)
    people: list[People] = field(default_factory=list)
    results: list[dict] = field(default_factory=list)


def stage_times(network_s: float, maps_s: float, peaks_s: float,
                association_s: float) -> dict[str, float]:
    post = maps_s + peaks_s + association_s
    return {"network": network_s, "maps": maps_s, "peaks": peaks_s,
            "association": association_s, "post": post, "total": network_s + post}


def decode_loops(inferred: NetworkOutputs) -> tuple[People, dict]:
    """The loop version of the original: up-sampling, then reference_grouping.py."""
    start = time.perf_counter()
    heatmaps, pafs = average_maps(inferred.outputs, inferred.geometry)
    upsampled = time.perf_counter()
    peaks = find_peaks_loops(heatmaps, CMU_GROUPING.thre1)
    peaked = time.perf_counter()
    keypoints, scores, counts = group_peaks_loops(
        peaks, pafs, CMU_GROUPING.thre2, CMU_GROUPING.mid_num, CMU_GROUPING.min_parts,
        CMU_GROUPING.min_mean_score)
    done = time.perf_counter()
    return (People(keypoints, scores, counts),
            stage_times(inferred.network_s, upsampled - start, peaked - upsampled, done - peaked))


def decode(name: str, pipelines: dict[str, PosePipeline],
           inferred: NetworkOutputs) -> tuple[People, dict]:
    """People and stage times of decoder ``name``."""
    if name == "loops":
        return decode_loops(inferred)
    t = (result := pipelines[name].decode(inferred)).timings
    return result.people, stage_times(t.network_s, t.maps_s, t.peaks_s, t.association_s)


def same_people(a: People, b: People) -> bool:
    """Same count, parts within 1 pixel, same part counts."""
    return (len(a) == len(b) and bool(np.all(np.abs(a.xy - b.xy) <= 1))
            and np.array_equal(a.part_counts, b.part_counts))


def make_pipelines(args: argparse.Namespace, scales: tuple[float, ...]) -> dict[str, PosePipeline]:
    network = network_from_args(args)
    params = InferenceParams(scales=scales)
    return {name: PosePipeline(network, params, CMU_GROUPING, decoder=name)
            for name in ("fast", "faithful")}


def run_setting(pipelines, coco_gt, images: Path, ids: list[int], decoders) -> dict[str, Record]:
    records = {name: Record() for name in decoders}
    fast = pipelines["fast"]
    for n, image_id in enumerate(ids, 1):
        image = cv2.imread(str(images / coco_gt.loadImgs(image_id)[0]["file_name"]))
        inferred = fast.infer(image)
        for name in decoders:
            people, times = decode(name, pipelines, inferred)
            records[name].times.append(times)
            records[name].people.append(people)
            records[name].results.extend(people.to_coco(image_id))
        print(f"\r  {n}/{len(ids)} images", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return records


def summary_rows(setting: str, records: dict[str, Record], coco_gt, ids: list[int]) -> list[str]:
    rows = []
    fast_post = np.mean([t["post"] for t in records["fast"].times]) if "fast" in records else None
    reference = records.get("faithful")
    for name, record in records.items():
        ms = {s: 1000 * np.array([t[s] for t in record.times]) for s in STAGES}
        ap = score_keypoints(coco_gt, record.results, ids)["AP"]
        ratio = f"{ms['post'].mean() / 1000 / fast_post:.1f}x" if fast_post else "-"
        differ = (sum(not same_people(a, b) for a, b in zip(record.people, reference.people,
                                                               strict=True))
                  if reference is not None else "-")
        cells = " | ".join(f"{ms[s].mean():.1f} / {np.median(ms[s]):.1f}" for s in STAGES)
        rows.append(f"| {setting} | {name} | {cells} | {ratio} | {ap:.3f} | {differ} |")
    return rows


def crowd_rows(pipelines, image: np.ndarray, repeats: int, decoders, setting: str) -> list[str]:
    """The 21-person image alone: one warm-up run (its first call builds the fast decoder's
    operators), then ``repeats`` runs; best and median ms per stage."""
    fast = pipelines["fast"]
    rows = []
    times: dict[str, list[dict]] = {name: [] for name in decoders}
    first: dict[str, float] = {}
    found: dict[str, int] = {}
    for run in range(repeats + 1):
        inferred = fast.infer(image)
        for name in decoders:
            people, t = decode(name, pipelines, inferred)
            found[name] = len(people)
            if run == 0:
                first[name] = t["post"]
            else:
                times[name].append(t)
    for name in decoders:
        ms = {s: 1000 * np.array([t[s] for t in times[name]]) for s in STAGES}
        cells = " | ".join(f"{ms[s].min():.1f} / {np.median(ms[s]):.1f}" for s in STAGES)
        rows.append(f"| {setting} | {name} | {cells} | {1000 * first[name]:.1f} | {found[name]} |")
    return rows


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: VmHWM of /proc/self/status where there is one
    (Linux; unlike ``ru_maxrss`` it starts afresh at exec, so the parent's size does not leak
    in), else ``ru_maxrss``."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(args: argparse.Namespace) -> None:
    """In a fresh process: peak resident memory (MB) after the network and after decoding, on
    the 1920x1080 image at 4 scales; printed as JSON."""
    pipelines = make_pipelines(args, SETTINGS["4 scales"])
    pipeline = pipelines[args.memory_child]
    image = cv2.resize(cv2.imread(str(args.coco / "val2017" / CROWD_IMAGE)),
                       MEMORY_SHAPE[::-1], interpolation=cv2.INTER_CUBIC)
    inferred = pipeline.infer(image)
    after_network = peak_rss_mb()
    result = pipeline.decode(inferred)
    peak = peak_rss_mb()
    print(json.dumps({"after_network_mb": after_network, "peak_mb": peak,
                      "people": len(result.people), "network_s": inferred.network_s,
                      "post_s": result.timings.postprocess_s}))


def memory_rows(args: argparse.Namespace) -> list[str]:
    rows = []
    for name in ("fast", "faithful"):
        command = [sys.executable, "-m", "benchmarks.pipeline", "--memory-child", name,
                   "--coco", str(args.coco), "--runtime", args.runtime]
        if args.model is not None:
            command += ["--model", str(args.model)]
        if args.arch is not None:
            command += ["--arch", args.arch]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        m = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(f"| {name} | {m['after_network_mb']:.0f} | {m['peak_mb']:.0f} | "
                    f"{m['network_s']:.2f} | {1000 * m['post_s']:.0f} | {m['people']} |")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coco", type=Path, default=COCO_MINI, help="coco_mini folder")
    parser.add_argument("--limit", type=int, default=None, help="only the first N val images")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed runs of the 21-person image (default 5)")
    parser.add_argument("--decoders", nargs="+", choices=DECODERS, default=list(DECODERS),
                        help="decoders to time (default all; fast is always included)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument("--memory-child", choices=("fast", "faithful"), help=argparse.SUPPRESS)
    add_model_args(parser)
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(args)
        return
    decoders = ["fast", *(d for d in args.decoders if d != "fast")]

    coco_gt = load_coco(args.coco / "annotations" / "person_keypoints_val2017.json")
    ids = sorted(coco_gt.getImgIds())[: args.limit]
    crowd = cv2.imread(str(args.coco / "val2017" / CROWD_IMAGE))
    table, crowd_table = [], []
    for setting, scales in SETTINGS.items():
        print(f"{setting}: {len(ids)} images", file=sys.stderr)
        pipelines = make_pipelines(args, scales)
        records = run_setting(pipelines, coco_gt, args.coco / "val2017", ids, decoders)
        table += summary_rows(setting, records, coco_gt, ids)
        crowd_table += crowd_rows(pipelines, crowd, args.repeats, decoders, setting)

    print(f"\n{machine_header()}\nruntime {args.runtime}, "
          f"{len(ids)} coco_mini val images; ms per image, mean / median\n")
    header = " | ".join(STAGES)
    print(f"| setting | decoder | {header} | post vs fast | AP | images with other people |")
    print("|---|---|" + "---|" * (len(STAGES) + 3))
    print("\n".join(table))
    print(f"\n{CROWD_IMAGE} (21 people), {args.repeats} runs after a warm-up: ms, best / "
          "median; first call: post-processing ms of the warm-up run\n")
    print(f"| setting | decoder | {header} | first call post | people |")
    print("|---|---|" + "---|" * (len(STAGES) + 2))
    print("\n".join(crowd_table))
    if not args.no_memory:
        print(f"\nPeak resident memory, fresh process, {MEMORY_SHAPE[1]}x{MEMORY_SHAPE[0]} "
              "image at 4 scales, one run\n")
        print("| decoder | MB after the network | MB peak | network s | post-processing ms "
              "| people |")
        print("|---|---|---|---|---|---|")
        print("\n".join(memory_rows(args)))


if __name__ == "__main__":
    main()
