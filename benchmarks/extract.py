"""Dataset extraction speed: local workers against Ray actors, and a resume after ``kill -9``.

    python -m benchmarks.extract [--boxsize 368] [--copies 8] [--images 20] [--no-ray]

The corpus: ``--copies`` copies of ``sample2.mp4`` (80 frames of 960x540 each) and the first
``--images`` coco_mini val2017 images, extracted by ``extract_poses.py --format jsonl`` at one
scale with MobileNet-thin, three times into fresh folders: 1 local worker (all cores), 2 local
workers (the cores shared out), and 2 Ray actors on a local Ray instance (``num_cpus`` = the
cores). Frames per second count from the moment every worker has loaded the model to the end
(start-up, the model loading in each worker, is shown apart); CPU ms per frame is the local
workers' CPU time (start-up included) per frame, which other jobs on the machine do not change
much. Then the 2-worker local run is
killed (``SIGKILL``, by the test hook ``RTPOSE_EXTRACT_KILL_AFTER``) after half the inputs and
run again: the resumed run must redo no input recorded as done, and end with the same files,
byte for byte, as the uninterrupted run. The CPU, its flags and the load average are printed:
figures taken while other work runs are not the machine's.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.machine import machine_header
from rtpose.extract.manifest import read_manifest
from rtpose.extract.run import KILL_AFTER_VARIABLE, Summary
from rtpose.tools import extract_poses

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
def make_corpus(folder: Path, copies: int, images: int) -> None:
    (folder / "videos").mkdir(parents=True)
    (folder / "images").mkdir()
    for i in range(copies):
        shutil.copyfile(SHARED / "videos" / "sample2.mp4", folder / "videos" / f"clip{i}.mp4")
    for image in sorted((SHARED / "coco_mini" / "val2017").glob("*.jpg"))[:images]:
        shutil.copyfile(image, folder / "images" / image.name)


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "manifest.jsonl"}


def run(argv: list[str]) -> Summary:
    args = extract_poses.build_parser().parse_args(argv)
    return extract_poses.run(args)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boxsize", type=int, default=368)
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray engine")
    options = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="rtpose-bench-extract-"))
    try:
        corpus = work / "corpus"
        make_corpus(corpus, options.copies, options.images)
        common = [str(corpus), "--format", "jsonl", "--scales", "1.0", "--boxsize",
                  str(options.boxsize), "--no-progress"]
        print(machine_header())
        print(f"model: MobileNet-thin (model/keras/mobilenet_thin.weights.h5), 1 scale, boxsize "
              f"{options.boxsize} (960x540 video -> {options.boxsize}x"
              f"{round(options.boxsize * 960 / 540 / 8) * 8} network input)")
        print(f"corpus: {options.copies} x sample2.mp4 (80 frames) + {options.images} "
              f"coco_mini images; load average at start {_load()}")
        runs = [("local", 1), ("local", 2)] + ([] if options.no_ray else [("ray", 2)])
        rows, outputs = [], {}
        for engine, workers in runs:
            out = work / f"{engine}{workers}"
            load, cpu = _load(), _children_cpu_s()
            summary = run([*common, "--output", str(out), "--engine", engine,
                           "--workers", str(workers)])
            # The local workers are this process's children (joined): their CPU time; Ray's
            # actors are the Ray instance's.
            cpu_ms = (_children_cpu_s() - cpu) / summary.frames * 1000 if engine == "local" \
                else None
            outputs[(engine, workers)] = out
            rows.append((engine, workers, max((os.cpu_count() or 1) // workers, 1), summary,
                         cpu_ms, load, _load()))
        base = rows[0][3].fps
        print()
        print("| engine | workers | threads each | frames | start-up s | frames/s | vs 1 local "
              "| CPU ms/frame | load at start / end |")
        print("|---|---|---|---|---|---|---|---|---|")
        for engine, workers, threads, summary, cpu_ms, before, after in rows:
            cpu = "-" if cpu_ms is None else f"{cpu_ms:.0f}"
            print(f"| {engine} | {workers} | {threads} | {summary.frames} | "
                  f"{summary.startup_s:.1f} | {summary.fps:.2f} | {summary.fps / base:.2f}x | "
                  f"{cpu} | {before} / {after} |")
        if ("ray", 2) in outputs:
            same = files(outputs[("ray", 2)]) == files(outputs[("local", 2)])
            print(f"Ray's outputs equal the local engine's, byte for byte: {same}")
        resume_check(common, work, outputs[("local", 2)], len(rows[0][3].done))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def resume_check(common: list[str], work: Path, reference: Path, total: int) -> None:
    """Kill a 2-worker run after half the inputs, resume it, compare with ``reference``."""
    out = work / "resumed"
    half = total // 2
    command = [sys.executable, "extract_poses.py", *common, "--output", str(out),
               "--workers", "2"]
    env = {**os.environ, KILL_AFTER_VARIABLE: str(half)}
    killed = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    killed.wait()
    _wait_for_group(killed.pid)  # its workers exit once they see it gone
    recorded = set(read_manifest(out / "manifest.jsonl"))
    lines_before = len((out / "manifest.jsonl").read_text().splitlines())
    start = time.perf_counter()
    summary = run([*common, "--output", str(out), "--workers", "2"])
    redone = recorded & set(summary.done)
    added = len((out / "manifest.jsonl").read_text().splitlines()) - lines_before
    same = files(out) == files(reference)
    print(f"kill -9 after {len(recorded)} of {total} inputs (exit {killed.returncode}); the "
          f"resumed run did {len(summary.done)} inputs in {time.perf_counter() - start:.1f} s, "
          f"recorded {added}, redid {len(redone)} finished ones; outputs equal the "
          f"uninterrupted run's, byte for byte: {same} ({len(files(out))} files)")


def _wait_for_group(group: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


if __name__ == "__main__":
    main()
