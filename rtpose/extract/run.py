"""One extraction run: plan from the manifest, run an engine, record every input, sum up.

    summary = extract(items, factory, Settings("out", "jsonl"), workers=2)

One run at a time writes into an output folder (a lock on it, and on the manifest's folder).
Before any work, every output path is checked against every other and against the inputs:
none may be another, or lie inside another (a video's OpenPose folder ``walk/`` and an image's
``walk/a_keypoints.json``), so that no input's outputs replace another's. Inputs that
the manifest records as done (and whose output is still there) are skipped, and
so are those recorded as failed unless ``retry``. Each result is recorded in the manifest as it
arrives, so that a run stopped at any moment (Ctrl+C, SIGTERM, ``kill -9``) loses at most the
inputs in flight, and running it again does the rest. The corpus-wide files of the dataset
formats (``rtpose.extract.datasets.finish_corpus``) are made at the end of a run that was not
interrupted, from every input the manifest records as done.
"""

from __future__ import annotations

import os
import pickle
import signal
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path, PurePosixPath
from typing import Any

from tqdm import tqdm

from rtpose.errors import RtposeError
from rtpose.extract.datasets import finish_corpus
from rtpose.extract.engine import Engine
from rtpose.extract.inputs import Item
from rtpose.extract.local import LocalEngine
from rtpose.extract.manifest import MANIFEST_NAME, Manifest
from rtpose.extract.store import LocalStore, Store, open_store
from rtpose.extract.worker import Result, Settings
from rtpose.extract.writers import output_name, output_names
from rtpose.files import FolderLock

ENGINES = ("local", "ray")
# For tests: "N" or "N:SIGNAL" (KILL, TERM, INT): the driver sends itself the signal (default
# SIGKILL) right after recording its N-th input.
KILL_AFTER_VARIABLE = "RTPOSE_EXTRACT_KILL_AFTER"


@dataclass
class Summary:
    """What a run did. ``done``/``failed``: inputs finished in this run (failed as (name,
    reason)); ``skipped``: recorded as done before; ``failed_before``: recorded as failed before
    and not retried; ``frames``/``people``: processed in this run; ``elapsed_s``: the whole
    run; ``startup_s``: until every worker had loaded the model; ``interrupted``: stopped by
    Ctrl+C or SIGTERM."""

    total: int = 0
    done: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: int = 0
    failed_before: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    frames: int = 0
    people: int = 0
    elapsed_s: float = 0.0
    startup_s: float = 0.0
    interrupted: bool = False
    corpus: str | None = None  # the corpus-wide file made (dataset formats)

    @property
    def any_failed(self) -> bool:
        """Whether any input of the run is recorded as failed, now or before."""
        return bool(self.failed or self.failed_before)

    @property
    def fps(self) -> float:
        """Frames per second once the workers were ready."""
        seconds = self.elapsed_s - self.startup_s
        return self.frames / seconds if seconds > 0 else 0.0


def extract(
    items: Sequence[Item],
    factory: Callable[[int], Any],
    settings: Settings,
    *,
    workers: int = 1,
    threads: int | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    manifest: str | Path | None = None,
    retry: bool = False,
    model_settings: dict[str, Any] | None = None,
    progress: bool = True,
    stall_timeout: float | None = None,
) -> Summary:
    """Extract the people of ``items`` into ``settings.output``; see the module docstring.

    ``factory``: a picklable ``threads -> PosePipeline``, called once in each worker.
    ``threads``: per worker (default: the cores, or the Ray cluster's CPUs, shared out).
    ``manifest``: default ``manifest.jsonl`` in a local output folder; required for a URL.
    ``model_settings``: what else the outputs depend on (the model, its parameters), kept in the
    manifest with ``settings``: a later run into the same folder must have the same.
    ``stall_timeout``: seconds a local worker may go without progress (a frame, or the end of
    its input) before its input fails and a new worker takes its place (None: no limit).
    Ctrl+C (``KeyboardInterrupt``) ends the run with ``interrupted`` set.
    """
    if engine not in ENGINES:
        raise RtposeError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    store = open_store(settings.output)
    if manifest is None:
        if not store.local:
            raise RtposeError(f"an output URL ({settings.output}) needs --manifest FILE, a "
                              "local file where the run is recorded")
        manifest = store.root / MANIFEST_NAME
    if not store.shared:
        raise RtposeError(f"cannot write to {settings.output}: it lives in one process and "
                          "the workers cannot share it; choose a folder or a shared store "
                          "(s3://, gs://, ...)")
    manifest = Path(os.path.abspath(manifest))
    check_outputs_apart(items, settings, store, manifest)
    recorded = {k: v for k, v in asdict(settings).items()
                if k not in ("output", "max_image_pixels")}  # outputs do not depend on these
    summary = Summary(total=len(items))
    start = time.perf_counter()
    folders = [Path(os.path.abspath(store.root))] if isinstance(store, LocalStore) else []
    if manifest.parent not in folders:
        folders.append(manifest.parent)
    with ExitStack() as stack:
        for folder in folders:
            stack.enter_context(FolderLock(folder, "extraction", "another output folder"))
        book = stack.enter_context(Manifest(manifest, {**recorded, **(model_settings or {})}))
        to_do = _plan(items, book, store, settings.format, retry, summary)
        if to_do:
            _run(to_do, pickle.dumps(factory), settings, workers, threads,
                 _engine(engine, ray_address, stall_timeout), book, summary, start, progress)
        if not summary.interrupted:
            summary.corpus = finish_corpus(settings.format, store, book.records, settings.options)
    summary.elapsed_s = time.perf_counter() - start
    if not store.local:
        store.upload(Path(manifest), MANIFEST_NAME)
    return summary


def check_outputs_apart(items: Sequence[Item], settings: Settings, store: Store,
                        manifest: Path) -> None:
    """``RtposeError`` when two paths among the outputs of ``items``, the inputs and the
    manifest in a local output folder are the same, or one lies inside another: one input's
    outputs would replace or hold another's, or an input, or the manifest."""
    entries: list[tuple[tuple[str, ...], int, str]] = []  # (parts, outputs first, what)
    for item in items:
        for name in output_names(item, settings.format, settings.render):
            entries.append((PurePosixPath(name).parts, 0, f"the output {name} of {item.name}"))
    if isinstance(store, LocalStore):
        root = Path(os.path.abspath(store.root))
        places = [(Path(item.path), f"the input {item.name}") for item in items]
        for path, what in [*places, (manifest, "the manifest")]:
            path = Path(os.path.abspath(path))
            if path == root or root in path.parents:
                entries.append((path.relative_to(root).parts, 1, what))
    entries.sort()
    for (a, _, what_a), (b, _, what_b) in pairwise(entries):
        if b[:len(a)] == a:
            relation = "is" if a == b else "would hold"
            raise RtposeError(f"{what_a} {relation} {what_b}: rename one, or choose another "
                              "output folder (nothing was written)")


def _plan(items: Sequence[Item], book: Manifest, store: Store, format: str, retry: bool,
          summary: Summary) -> list[Item]:
    """The items to process, largest file first (so that no long video starts last while the
    other workers sit idle); counts the others in ``summary``."""
    to_do = []
    for item in items:
        status = book.status(item.name)
        if status == "done" and (not store.local or store.exists(output_name(item, format))):
            summary.skipped += 1
        elif status == "failed" and not retry:
            summary.failed_before.append((item.name, book.records[item.name].get("reason", "")))
        else:
            to_do.append(item)
    return sorted(to_do, key=_size, reverse=True)


def _size(item: Item) -> int:
    try:
        return os.path.getsize(item.path)
    except OSError:
        return 0


def _run(to_do: list[Item], factory: bytes, settings: Settings, workers: int,
         threads: int | None, engine: Engine, book: Manifest, summary: Summary, start: float,
         progress: bool) -> None:
    kill_after, _, kill_signal = os.environ.get(KILL_AFTER_VARIABLE, "0").partition(":")
    bar = tqdm(total=len(to_do), unit="input", desc="extracting", disable=not progress,
               dynamic_ncols=True)
    frames = _FrameRate()

    def on_ready() -> None:
        summary.startup_s = time.perf_counter() - start
        frames.start()

    def on_frames(count: int) -> None:
        if frames.add(count):
            bar.set_postfix_str(f"{frames.rate:.1f} frames/s", refresh=True)

    def on_result(item: Item, result: Result) -> None:
        if result.status == "stopped":
            return
        if result.status == "done":
            names = output_names(item, settings.format, settings.render)
            book.record(item.name, status="done", frames=result.frames, people=result.people,
                        seconds=result.seconds, output=names[0],
                        rendered=names[1] if settings.render else None,
                        warnings=list(result.warnings))
            summary.done.append(item.name)
            summary.frames += result.frames
            summary.people += result.people
            summary.warnings.extend((item.name, w) for w in result.warnings)
        else:
            book.record(item.name, status="failed", reason=result.reason,
                        seconds=result.seconds)
            summary.failed.append((item.name, result.reason or ""))
        bar.update()
        if int(kill_after) and len(summary.done) + len(summary.failed) == int(kill_after):
            os.kill(os.getpid(), signal.Signals[f"SIG{kill_signal or 'KILL'}"])

    workers = min(workers, len(to_do))
    try:
        with engine:
            threads = threads or max(engine.cpus() // workers, 1)
            engine.run(to_do, factory, settings, workers, threads, on_result, on_frames,
                       on_ready)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        bar.close()


def _engine(name: str, ray_address: str | None, stall_timeout: float | None) -> Engine:
    """The engine called ``name`` (one of ``ENGINES``)."""
    if name == "local":
        return LocalEngine(stall_timeout)
    from rtpose.extract.ray_engine import RayEngine  # Ray, an optional extra, only here

    return RayEngine(ray_address)


class _FrameRate:
    """Frames per second since ``start``; ``add`` says when it is time to show it again."""

    def __init__(self) -> None:
        self.count = 0
        self.started = self.shown = time.perf_counter()

    def start(self) -> None:
        self.count = 0
        self.started = time.perf_counter()

    def add(self, count: int) -> bool:
        self.count += count
        now = time.perf_counter()
        if now - self.shown < 0.5:
            return False
        self.shown = now
        return True

    @property
    def rate(self) -> float:
        seconds = time.perf_counter() - self.started
        return self.count / seconds if seconds > 0 else 0.0
