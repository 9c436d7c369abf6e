"""The Ray engine: the same ``Worker``s as Ray actors, each input one actor task.

    ray.init(address)  ──▶  N actors (``num_cpus`` = their threads), each loading the model once
    driver: keeps every actor busy with one ``process(item)`` task, records each result

Inputs must be readable, and the output folder writable, at the same paths on every node
(a shared file system), or the output is an fsspec URL that every node can write. Every node
needs rtpose (and the weights file at the same path). An actor that dies (its node lost, a
crash) fails only the input in hand, and a new actor takes its place.

Ray is an optional extra: ``pip install 'rtpose[ray]'``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from rtpose.errors import RtposeError, first_line
from rtpose.extract.inputs import Item
from rtpose.extract.worker import Result, Settings, Worker

RAY_MISSING = "the ray engine needs Ray: pip install 'rtpose[ray]'"
WAIT_S = 1.0


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RtposeError(RAY_MISSING) from None
    return ray


class RayWorker:
    """The actor: a ``Worker``, or the one-line reason it could not load the model."""

    def __init__(self, factory: bytes, settings: Settings, threads: int) -> None:
        self.error = None
        try:
            self.worker = Worker(factory, settings, threads)
        except Exception as error:
            self.error = str(error) if isinstance(error, RtposeError) else (
                f"{type(error).__name__}: {first_line(error)}")

    def ready(self) -> str | None:
        return self.error

    def process(self, item: Item) -> Result:
        return self.worker.process(item)


class RayEngine:
    """The ``Engine`` of Ray actors on the cluster at ``address`` (``ray.init``'s; None: the
    running one, or a new local one), connected for the ``with`` block; a connection this made
    is closed at its end."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address
        self.ray: Any = None
        self._started = False

    def __enter__(self) -> RayEngine:
        ray = import_ray()
        self._started = not ray.is_initialized()
        if self._started:
            try:
                ray.init(address=self.address, log_to_driver=False)
            except (ConnectionError, ValueError, RuntimeError) as error:
                where = self.address or "a local instance"
                raise RtposeError(f"cannot start Ray at {where}: {first_line(error)}") from None
        self.ray = ray
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._started:
            self.ray.shutdown()
        self.ray, self._started = None, False

    def cpus(self) -> int:
        """The CPUs of the connected Ray cluster."""
        return max(int(self.ray.cluster_resources().get("CPU", 1)), 1)

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
        """``rtpose.extract.engine.Engine.run``, with ``workers`` actors."""
        ray = self.ray
        actor_class = ray.remote(num_cpus=threads, max_restarts=0)(RayWorker)
        pending = deque(items)
        actors: list[Any] = []
        tasks: dict[Any, tuple[Any, Item]] = {}

        def start_actor() -> Any:
            actor = actor_class.remote(factory, settings, threads)
            actors.append(actor)
            return actor

        try:
            for _ in range(workers):
                start_actor()
            _check_ready(ray, actors)
            on_ready()
            idle = list(actors)
            while pending or tasks:
                while idle and pending:
                    actor, item = idle.pop(), pending.popleft()
                    tasks[actor.process.remote(item)] = (actor, item)
                done, _ = ray.wait(list(tasks), num_returns=1, timeout=WAIT_S)
                for ref in done:
                    actor, item = tasks.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayActorError as error:
                        result = Result(item.name, "failed", reason=f"the Ray worker died while "
                                        f"reading it: {first_line(error)}")
                        actors.remove(actor)
                        actor = start_actor()
                        _check_ready(ray, [actor])
                    on_frames(result.frames)
                    on_result(item, result)
                    idle.append(actor)
        finally:
            for actor in actors:
                ray.kill(actor)


def _check_ready(ray: Any, actors: list[Any]) -> None:
    """Wait until ``actors`` have loaded the model; ``RtposeError`` if one could not."""
    for error in ray.get([actor.ready.remote() for actor in actors]):
        if error is not None:
            raise RtposeError(f"cannot load the model: {error}")
