"""The engine contract: what runs ``Worker``s over the inputs of one extraction run.

    with engine:                                    # connected (a Ray cluster) for the block
        threads = engine.cpus() // workers
        engine.run(items, factory, settings, workers, threads, on_result, on_frames, on_ready)

Implemented by ``rtpose.extract.local.LocalEngine`` (spawned processes) and
``rtpose.extract.ray_engine.RayEngine`` (Ray actors); ``rtpose.extract.run`` calls through it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from rtpose.extract.inputs import Item
from rtpose.extract.worker import Result, Settings


class Engine(Protocol):
    """Runs ``workers`` ``Worker``s of ``threads`` threads each over ``items``."""

    def __enter__(self) -> Engine:
        """The engine, ready to ``run`` (connected to its cluster) until the block ends."""

    def __exit__(self, *exc_info: object) -> None:
        """Disconnect what ``__enter__`` connected."""

    def cpus(self) -> int:
        """The CPUs the workers share."""

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
        """Process ``items``. ``factory``: a pickled ``threads -> PosePipeline``, called once
        in each worker. ``on_result`` is called in this process for every finished input
        (never for one dropped when the run is stopped), ``on_frames`` with frame counts as
        they are processed, ``on_ready`` once every worker has loaded the model. Raises
        ``RtposeError`` when a worker cannot load the model; Ctrl+C (``KeyboardInterrupt``)
        stops the workers, then propagates."""
