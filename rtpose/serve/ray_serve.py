"""The same app on Ray Serve: ``replicas`` copies, each a ``create_app`` with its own models and
bounded queue, behind Serve's HTTP proxy on ``host:port``.

    deploy(settings, replicas=2, host="127.0.0.1", port=8000)   # blocks until SIGTERM

``autoscaling`` (Serve's ``AutoscalingConfig`` fields, e.g. ``min_replicas``, ``max_replicas``,
``target_ongoing_requests``) replaces the fixed count. Each replica takes ``replica_cpus`` CPUs
and runs its network on that many threads. A replica accepts at most its engine's capacity;
Serve's proxy queues at most ``settings.queue_size`` more and answers 503 beyond.
The page needs one replica per browser session (Gradio's queue), so with Ray only the API is
served. Ray Serve is an optional extra: ``pip install 'rtpose[serve]'``.
"""

from __future__ import annotations

import dataclasses
import json
import signal
from typing import Any

from rtpose.errors import RtposeError, first_line

SERVE_MISSING = "--engine ray needs Ray Serve: pip install 'rtpose[serve]'"
APP_NAME = "rtpose"


def import_serve() -> Any:
    try:
        from ray import serve
    except ImportError:
        raise RtposeError(SERVE_MISSING) from None
    return serve


def parse_autoscaling(items: list[str]) -> dict[str, Any]:
    """``["min_replicas=1", "max_replicas=4"]`` → ``{"min_replicas": 1, "max_replicas": 4}``
    (values read as JSON, else kept as text)."""
    config = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise RtposeError(f"--autoscaling takes KEY=VALUE, got {item!r}")
        try:
            config[key] = json.loads(value)
        except ValueError:
            config[key] = value
    return config


def application(settings: Any, replicas: int = 1, autoscaling: dict[str, Any] | None = None,
                replica_cpus: float = 1.0) -> Any:
    """The Serve application of the app (bind it to ``serve.run``)."""
    serve = import_serve()
    settings = dataclasses.replace(settings, page=False,
                                   threads=settings.threads or max(int(replica_cpus), 1))

    @serve.ingress()
    class PoseService:
        """One replica: the FastAPI app of ``create_app``, built on the replica."""

        def __init__(self, settings: Any) -> None:
            self.settings = settings

        def __serve_build_asgi_app__(self) -> Any:
            from rtpose.serve.app import create_app

            return create_app(self.settings)

    options: dict[str, Any] = {
        "ray_actor_options": {"num_cpus": replica_cpus},
        "max_ongoing_requests": settings.workers + settings.queue_size,
        "max_queued_requests": settings.queue_size,
        "graceful_shutdown_timeout_s": settings.timeout_s + 5,
    }
    if autoscaling:
        options["autoscaling_config"] = autoscaling
    else:
        options["num_replicas"] = replicas
    return serve.deployment(PoseService, name="pose", **options).bind(settings)


def start(settings: Any, host: str, port: int, address: str | None = None, **options: Any):
    """Ray (``address``: a cluster's, or a new local instance) and Serve's proxy on
    ``host:port``, with the application running; returns Serve's module."""
    serve = import_serve()
    import ray

    if not ray.is_initialized():
        handler = signal.getsignal(signal.SIGTERM)
        try:
            ray.init(address=address, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as error:
            raise RtposeError(f"cannot start Ray at {address or 'a local instance'}: "
                              f"{first_line(error)}") from None
        if handler is not None:  # the caller's: Ray's own would abort the process
            signal.signal(signal.SIGTERM, handler)
    serve.start(http_options={"host": host, "port": port})
    serve.run(application(settings, **options), name=APP_NAME, route_prefix="/")
    return serve


def stop() -> None:
    """The application (each replica first answers the requests it holds), Serve's proxy,
    then this process's Ray connection."""
    import ray

    serve = import_serve()
    if ray.is_initialized():
        serve.delete(APP_NAME)
        serve.shutdown()
    ray.shutdown()
