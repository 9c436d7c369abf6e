"""The server's models: names that clients may ask for, each network loaded once and shared.

A client names a model (``mobilenet_thin``), never a file: the operator maps names to weights
files when starting the server (``--model NAME=PATH``; by default every default weights file
found, named after its architecture). ``Models.pipeline(request)`` gives a ``PosePipeline`` for
one request's settings; the network under it (weights x runtime x precision) is loaded on first
use, by one thread while the others wait, and then shared by every request and every user.

``load_network`` is the one place that builds a network, through the library's
``rtpose.api.build_network`` as the command-line tools do. A request's ``hands`` and ``face``
add OpenPose's hand and face networks (``rtpose.wholebody.part_networks``, their weights where
the store finds them), each loaded on first use on the body's runtime and precision and shared
as the body's are. Without their weights, such a request gets one line saying how to get them
(no path of the server), and the others are served as before.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rtpose import store
from rtpose.api import build_network
from rtpose.config import PRESETS, parse_scales
from rtpose.errors import ModelNotFoundError, RtposeError
from rtpose.geometry import MAX_INPUT_PIXELS
from rtpose.pipeline import PosePipeline
from rtpose.runtime import PRECISIONS, RUNTIMES, Network, resolve_runtime
from rtpose.tools.common import params_from_args

if TYPE_CHECKING:
    from rtpose.runtime.part_runtime import HeatmapNetwork

LOG = logging.getLogger("rtpose.serve")


@dataclass(frozen=True)
class PoseRequest:
    """What one request asks for: a model by name and the inference settings. ``scales``,
    ``flip`` and ``refine`` are None to keep the preset's."""

    model: str
    runtime: str = "auto"
    precision: str = "fp32"
    preset: str = "original"
    scales: tuple[float, ...] | None = None
    flip: bool | None = None
    refine: bool | None = None
    hands: bool = False
    face: bool = False


def load_network(weights: Path, runtime: str, precision: str, hint: str,
                 threads: int | None = None) -> Network:
    """The network of ``weights`` on ``runtime`` at ``precision`` (OpenVINO's performance
    ``hint``: ``throughput`` runs concurrent requests side by side on its streams;
    ``threads``: its CPU threads, default all cores)."""
    return build_network(weights, None, runtime, precision, threads, hint)


def parse_model_spec(text: str) -> tuple[str, Path]:
    """``NAME=PATH`` or ``PATH`` (named after the file: ``x.weights.h5`` → ``x``)."""
    name, sep, path = text.partition("=")
    if not sep:
        path, name = text, Path(text).name.split(".")[0]
    if not name or not path:
        raise RtposeError(f"--model takes NAME=PATH or PATH, got {text!r}")
    return name, Path(path)


def default_models() -> dict[str, Path]:
    """Every body model present (the checkout's ``model/keras/``, then the store), by name."""
    return {name: path for name in store.body_models() if (path := store.locate(name))}


class Models:
    """Named weights files, their networks loaded on demand and cached.

    ``hint``: OpenVINO's performance hint for
    every network; ``threads``: each network's CPU threads (default all cores);
    ``max_pixels``: the pipelines' bound on one scale's network input."""

    def __init__(self, files: dict[str, Path], hint: str = "latency",
                 threads: int | None = None, max_pixels: int = MAX_INPUT_PIXELS) -> None:
        if not files:
            raise RtposeError("no model to serve: give --model NAME=PATH, or put a default "
                              "weights file in place (bash model/get_mobilenet_thin.sh)")
        for name, path in files.items():
            if not Path(path).is_file():
                raise RtposeError(f"--model {name}: no such weights file: {path}")
        self.files = dict(files)
        self.hint, self.threads = hint, threads
        self.max_pixels = max_pixels
        self._networks: dict[tuple[str, str, str, str], Any] = {}
        self._failed: dict[tuple[str, str, str, str], str] = {}
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, str, str, str], threading.Lock] = {}

    @property
    def names(self) -> list[str]:
        return list(self.files)

    def loaded(self) -> list[dict[str, str]]:
        """The networks in memory: model (or part: ``hand``, ``face``), runtime, precision."""
        with self._lock:
            keys = list(self._networks)
        return [{kind: name, "runtime": r, "precision": p} for kind, name, r, p in keys]

    def check(self, request: PoseRequest) -> PoseRequest:
        """``request`` with ``auto`` resolved, or ``RtposeError`` naming the bad setting (the
        4xx of a request)."""
        if request.model not in self.files:
            raise RtposeError(f"unknown model {request.model!r}; this server has "
                              f"{', '.join(self.files)}")
        if request.runtime not in ("auto", *RUNTIMES):
            raise RtposeError(f"unknown runtime {request.runtime!r}; choose one of auto, "
                              f"{', '.join(RUNTIMES)}")
        if request.precision not in PRECISIONS:
            raise RtposeError(f"unknown precision {request.precision!r}; choose one of "
                              f"{', '.join(PRECISIONS)}")
        if request.preset not in PRESETS:
            raise RtposeError(f"unknown preset {request.preset!r}; choose one of "
                              f"{', '.join(PRESETS)}")
        runtime = resolve_runtime(request.runtime, request.precision)
        return dataclasses.replace(request, runtime=runtime)

    def network(self, model: str, runtime: str, precision: str) -> Network:
        """The network, loaded once (concurrent first requests wait for the one loading it). A
        failure is remembered and reported without the server's paths."""
        return self._once(("model", model, runtime, precision), lambda: load_network(
            self.files[model], runtime, precision, self.hint, self.threads))

    def part_network(self, part: str, runtime: str, precision: str) -> HeatmapNetwork:
        """The ``hand`` or ``face`` network beside a body network on ``runtime`` at
        ``precision``, loaded once as ``network`` loads; missing weights are one line saying how
        to get them, not remembered (they may be put in place while the server runs)."""
        from rtpose.native import quiet_native_stderr
        from rtpose.runtime.part_runtime import default_weights, how_to_get, part_network
        from rtpose.wholebody import part_settings

        def load() -> HeatmapNetwork:
            try:
                weights = default_weights(part)
            except ModelNotFoundError as error:
                LOG.warning("%s", error)  # with the paths searched, for the server's log only
                raise ModelNotFoundError(f"this server has no {part} network weights: "
                                         f"{how_to_get(part)}") from None
            with quiet_native_stderr():
                return part_network(part, weights, *part_settings(runtime, precision),
                                    self.threads)

        return self._once(("part", part, *part_settings(runtime, precision)), load)

    def _once(self, key: tuple[str, str, str, str], load: Callable[[], Any]) -> Any:
        """``load()``'s network, once per ``key``: (``model`` or ``part``, name, runtime,
        precision)."""
        kind, name, runtime, precision = key
        with self._lock:
            if key in self._networks:
                return self._networks[key]
            if key in self._failed:
                raise RtposeError(self._failed[key])
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                if key in self._networks:
                    return self._networks[key]
            try:
                network = load()
            except ModelNotFoundError:
                raise
            except RtposeError as error:
                # The reason may name server files: it goes to the server's log only.
                LOG.warning("cannot load %s on %s at %s: %s", name, runtime, precision, error)
                what = f"model {name}" if kind == "model" else f"the {name} network"
                reason = f"{what} cannot run on {runtime} at {precision} on this server"
                with self._lock:
                    self._failed[key] = reason
                raise RtposeError(reason) from None
            with self._lock:
                self._networks[key] = network
            return network

    def pipeline(self, request: PoseRequest) -> PosePipeline:
        """A pipeline for ``request`` (checked by ``check``) on the shared network."""
        network = self.network(request.model, request.runtime, request.precision)
        settings = argparse.Namespace(config=None, preset=request.preset, scales=request.scales,
                                      boxsize=None, flip=request.flip, thre1=None, thre2=None,
                                      refine=request.refine)
        inference, grouping = params_from_args(settings)
        parts = [self.part_network(part, request.runtime, request.precision) if wanted else None
                 for part, wanted in (("hand", request.hands), ("face", request.face))]
        return PosePipeline(network, inference, grouping, "fast", self.max_pixels, *parts)


def parse_request_scales(text: str) -> tuple[float, ...]:
    """``scales`` of a request: comma-separated positive numbers, at most 8."""
    try:
        scales = parse_scales(text)
    except ValueError:
        raise RtposeError(f"scales: not a comma-separated list of numbers: {text!r}") from None
    if not scales or len(scales) > 8 or min(scales) <= 0 or max(scales) > 4:
        raise RtposeError(f"scales: 1 to 8 numbers in (0, 4], got {text!r}")
    return scales
