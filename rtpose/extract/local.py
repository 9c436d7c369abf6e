"""The local engine: ``Worker``s in spawned processes, fed one input at a time over pipes.

    driver ──item──▶ worker process 1 (model loaded once; capture, network, decoding threads)
           ◀─result─ worker process 2 ...

Each worker gets the next input as soon as it returns a result, so the slowest input never
holds up the others. A worker that dies (a decoder's crash, the memory killer) fails only its
input, and a new worker takes its place; so does one that stalls (a read that never returns,
a stopped process): after ``stall_timeout`` seconds without progress (no frame processed, no
result) its input fails, and the worker is killed and replaced. Workers ignore Ctrl+C: the
driver stops them (they drop the input in hand, publishing nothing) and they exit by
themselves when the driver is killed (``kill -9``), within a frame.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.connection import Connection, wait

from rtpose.errors import RtposeError, first_line
from rtpose.extract.inputs import Item
from rtpose.extract.store import open_store
from rtpose.extract.worker import Result, Settings, Worker
from rtpose.extract.writers import output_names

POLL_S = 0.5  # how often an idle worker looks for its driver, and the driver for dead workers
PROGRESS_S = 0.5  # how often a worker reports the frames it processed
STOP_TIMEOUT_S = 15.0


class LocalEngine:
    """The ``Engine`` of spawned processes on this machine; ``stall_timeout``: see the module
    docstring (None: wait for ever)."""

    def __init__(self, stall_timeout: float | None = None) -> None:
        self.stall_timeout = stall_timeout

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def cpus(self) -> int:
        """The cores this process may run on."""
        if hasattr(os, "sched_getaffinity"):
            return len(os.sched_getaffinity(0))
        return os.cpu_count() or 1

    def run(
        self,
        items: Sequence[Item],
        factory: bytes,
        settings: Settings,
        workers: int,
        threads: int,
        on_result: Callable[[Item, Result], None],
        on_frames: Callable[[int], None] = lambda n: None,
        on_ready: Callable[[], None] = lambda: None,
    ) -> None:
        """``rtpose.extract.engine.Engine.run``, with ``workers`` processes."""
        stall_timeout = self.stall_timeout
        context = multiprocessing.get_context("spawn")
        stop = context.Event()
        pending = deque(items)
        slots = [_Slot(context, factory, settings, threads, stop) for _ in range(workers)]
        announced = False
        try:
            while pending or any(slot.item is not None for slot in slots):
                for slot in slots:
                    if slot.ready and slot.item is None and pending:
                        slot.give(pending.popleft())
                wait([slot.conn for slot in slots] + [slot.process.sentinel for slot in slots],
                     POLL_S)
                for index, slot in enumerate(slots):
                    alive = slot.process.is_alive()  # before reading: a dead one's last words too
                    for message in slot.messages():
                        if message[0] == "fatal":
                            raise RtposeError(message[1])
                        if message[0] == "frames":
                            on_frames(message[1])
                        elif message[0] == "result":
                            item, slot.item = slot.item, None
                            on_result(item, message[1])
                    if alive and slot.stalled(stall_timeout):
                        slot.process.kill()  # a stopped process too
                        slot.process.join()
                        _discard_temporaries(settings, slot.item)
                        on_result(slot.item, Result(
                            slot.item.name, "failed",
                            reason=f"no progress for {stall_timeout:g} s (a stalled read?): its "
                                   "worker was stopped and replaced"))
                        slots[index] = _Slot(context, factory, settings, threads, stop)
                    elif not alive:
                        slot.process.join()
                        code = slot.process.exitcode
                        if not slot.ready:
                            raise RtposeError(f"a worker process died while loading the model "
                                              f"(exit code {code})")
                        if slot.item is not None:
                            _discard_temporaries(settings, slot.item)
                            on_result(slot.item, Result(
                                slot.item.name, "failed",
                                reason=f"the worker process died while reading it (exit code "
                                       f"{code})"))
                        slots[index] = _Slot(context, factory, settings, threads, stop)
                if not announced and all(slot.ready for slot in slots):
                    announced = True
                    on_ready()
        except BaseException:
            stop.set()
            raise
        finally:
            _shut_down(slots)


def _discard_temporaries(settings: Settings, item: Item) -> None:
    """Remove what a killed worker left of ``item``'s outputs (their temporaries)."""
    store = open_store(settings.output)
    for name in output_names(item, settings.format, settings.render):
        store.clean_stale(name)


class _Slot:
    """One worker process, its pipe, and the input it holds."""

    def __init__(self, context, factory: bytes, settings: Settings, threads: int, stop) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=_worker_main, args=(child, factory, settings, threads, stop, os.getpid()),
            name="rtpose-extract-worker", daemon=True)
        with _sigint_ignored():  # inherited: a Ctrl+C while it starts is the driver's alone
            self.process.start()
        child.close()
        self.ready = False
        self.item: Item | None = None
        self.progressed = time.monotonic()

    def give(self, item: Item) -> None:
        self.item = item
        self.progressed = time.monotonic()
        self.conn.send(item)

    def stalled(self, timeout: float | None) -> bool:
        """Whether the input in hand has seen no progress for ``timeout`` seconds."""
        return (timeout is not None and self.item is not None
                and time.monotonic() - self.progressed > timeout)

    def messages(self):
        """The messages waiting on the pipe (none once it is closed)."""
        try:
            while self.conn.poll():
                message = self.conn.recv()
                self.progressed = time.monotonic()
                if message[0] == "ready":
                    self.ready = True
                else:
                    yield message
        except (EOFError, OSError):
            return


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _shut_down(slots: list[_Slot]) -> None:
    for slot in slots:
        try:
            slot.conn.send(None)
        except (OSError, ValueError):
            pass
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for slot in slots:
        slot.process.join(max(deadline - time.monotonic(), 0.1))
        if slot.process.is_alive():
            slot.process.kill()  # SIGKILL: a stopped (stalled) process ignores SIGTERM
            slot.process.join(STOP_TIMEOUT_S)
        slot.conn.close()


def _worker_main(conn: Connection, factory: bytes, settings: Settings, threads: int, stop,
                 parent: int) -> None:
    """A worker process: load the model, then process the items sent until None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides when to stop
    try:
        worker = Worker(factory, settings, threads)
    except BaseException as error:
        reason = str(error) if isinstance(error, RtposeError) else (
            f"{type(error).__name__}: {first_line(error)}")
        conn.send(("fatal", f"cannot load the model: {reason}"))
        return

    def orphaned() -> bool:
        return os.getppid() != parent

    conn.send(("ready",))
    try:
        while True:
            while not conn.poll(POLL_S):
                if orphaned():
                    return
            item = conn.recv()
            if item is None:
                return
            progress = _Progress(conn)
            result = worker.process(item, lambda: stop.is_set() or orphaned(), progress.tick)
            if orphaned():
                return
            progress.flush()
            conn.send(("result", result))
    except (EOFError, OSError):  # the driver is gone
        return


class _Progress:
    """Frame counts sent to the driver at most every ``PROGRESS_S``."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.count = 0
        self.last = time.monotonic()

    def tick(self) -> None:
        self.count += 1
        if time.monotonic() - self.last >= PROGRESS_S:
            self.flush()

    def flush(self) -> None:
        if self.count:
            self.conn.send(("frames", self.count))
        self.count = 0
        self.last = time.monotonic()
