"""The work queue between the HTTP handlers (and the page) and the networks.

    engine = Engine(run, workers=2, queue_size=8)
    job = engine.submit(task)        # None when full: the caller answers 503 + Retry-After
    result = job.future.result()     # run(task)'s result, or its exception

At most ``workers + queue_size`` jobs are accepted at a time (``workers`` running, the rest
waiting in order); a job submitted beyond that is refused at once, so memory stays bounded
whatever the load. ``workers`` threads each take the oldest job and call ``run(task)``; with
OpenVINO's ``throughput`` hint the networks of concurrent jobs run side by side, one stream
each (images differ in size, so they are not stacked into one batch). A job whose caller gave
up (``job.future.cancel()``, its time limit passed) before a worker took it is skipped.
``close()`` lets the accepted jobs finish, then stops the workers.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

SERVICE_WINDOW = 32  # recent jobs whose mean duration estimates Retry-After


@dataclass(eq=False)
class Job:
    """One accepted task; ``queued_s``: seconds it waited for a worker (set when taken)."""

    task: Any
    future: Future = field(default_factory=Future)
    accepted: float = field(default_factory=time.perf_counter)
    queued_s: float = 0.0


class Engine:
    """``workers`` threads running ``run(task)`` on jobs from a queue of ``queue_size``."""

    def __init__(self, run: Callable[[Any], Any], workers: int = 1, queue_size: int = 8):
        if workers < 1 or queue_size < 0:
            raise ValueError(f"workers must be >= 1 and queue_size >= 0, got {workers}, "
                             f"{queue_size}")
        self.run, self.workers, self.queue_size = run, workers, queue_size
        self._jobs: deque[Job] = deque()
        self._condition = threading.Condition()
        self._running = 0
        self._closing = False
        self._durations: deque[float] = deque(maxlen=SERVICE_WINDOW)
        self.answered = 0
        self.refused = 0
        self._threads = [threading.Thread(target=self._work, name=f"rtpose-worker-{i}",
                                          daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()

    @property
    def capacity(self) -> int:
        """Jobs accepted at most at once: running plus waiting."""
        return self.workers + self.queue_size

    def submit(self, task: Any) -> Job | None:
        """Accept ``task``, or None when ``capacity`` jobs are already in hand (or closing)."""
        with self._condition:
            if self._closing or len(self._jobs) + self._running >= self.capacity:
                self.refused += 1
                return None
            job = Job(task)
            self._jobs.append(job)
            self._condition.notify()
            return job

    def retry_after_s(self) -> int:
        """Whole seconds until a place is likely free: the jobs in hand times the recent mean
        job duration, over the workers (at least 1)."""
        with self._condition:
            mean = sum(self._durations) / len(self._durations) if self._durations else 1.0
            in_hand = len(self._jobs) + self._running
        return max(1, math.ceil(mean * in_hand / self.workers))

    def stats(self) -> dict[str, int]:
        with self._condition:
            return {"workers": self.workers, "queue_size": self.queue_size,
                    "running": self._running, "waiting": len(self._jobs),
                    "answered": self.answered, "refused": self.refused}

    def _take(self) -> Job | None:
        with self._condition:
            while not self._jobs:
                if self._closing:
                    return None
                self._condition.wait()
            job = self._jobs.popleft()
            self._running += 1
            return job

    def _work(self) -> None:
        while (job := self._take()) is not None:
            start = time.perf_counter()
            job.queued_s = start - job.accepted
            ran = job.future.set_running_or_notify_cancel()
            try:
                if ran:
                    try:
                        job.future.set_result(self.run(job.task))
                    except BaseException as error:  # the caller's to report
                        job.future.set_exception(error)
            finally:
                with self._condition:
                    self._running -= 1
                    if ran:
                        self.answered += 1
                        self._durations.append(time.perf_counter() - start)
                    self._condition.notify_all()

    def close(self, timeout: float | None = None) -> None:
        """Refuse new jobs, finish the accepted ones, stop the workers."""
        with self._condition:
            self._closing = True
            self._condition.notify_all()
        for thread in self._threads:
            thread.join(timeout)
