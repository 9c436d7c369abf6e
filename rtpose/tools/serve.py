"""Serve pose estimation over HTTP: a page to try it in a browser and a JSON API beside it.

    python demo_web.py                                   # http://127.0.0.1:8000/
    python demo_web.py --model mobilenet_thin=model/keras/mobilenet_thin.weights.h5 --token S
    python demo_web.py --engine ray --replicas 2         # the API on Ray Serve

The page is at /, the API at /v1/pose (POST an image), /v1/health, /v1/models, its schema at
/openapi.json and /docs. SIGTERM or Ctrl+C stops taking connections, answers the requests in
hand, then exits. Needs the web extra: pip install -e .[web] (Ray Serve: .[serve]).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import sys

from rtpose.config import PRESETS
from rtpose.errors import RtposeError
from rtpose.files import sigterm_as_interrupt
from rtpose.runtime import PRECISIONS, RUNTIMES
from rtpose.tools.common import add_verbose_arg, one_line_errors, positive_int

TOKEN_ENV = "RTPOSE_TOKEN"
WEB_MISSING = "the server needs the web extra: pip install -e .[web]"
ENGINES = ("local", "ray")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1, this machine only; "
                        "0.0.0.0: every interface, anyone who reaches the port)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--model", dest="models", action="append", default=[],
                        metavar="[NAME=]PATH",
                        help="a weights file clients may ask for by NAME (default: the file's "
                        "name); may be given several times; the first is the default (default: "
                        "every default weights file in model/keras, by architecture)")
    parser.add_argument("--runtime", choices=("auto", *RUNTIMES), default="auto",
                        help="requests' default runtime (default auto)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="requests' default precision (default fp32)")
    parser.add_argument("--preset", choices=list(PRESETS), default="original",
                        help="requests' default preset (default original)")
    parser.add_argument("--workers", type=positive_int, default=2,
                        help="requests run at once, each on its own OpenVINO stream (default 2)")
    parser.add_argument("--queue", type=int, default=8,
                        help="requests waiting at most beyond those running; more are answered "
                        "503 with Retry-After (default 8)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds a request may take, queue included (default 30)")
    parser.add_argument("--max-upload-mb", type=float, default=20.0,
                        help="largest upload in MB (default 20)")
    parser.add_argument("--max-image-pixels", type=positive_int, default=40_000_000,
                        help="largest image in pixels (default 40,000,000)")
    parser.add_argument("--max-video-frames", type=positive_int, default=300,
                        help="frames of an uploaded video processed at most (default 300)")
    parser.add_argument("--max-connections", type=positive_int, default=100,
                        help="open connections at most (uploads in progress and page sessions "
                        "included); more are answered 503 (default 100)")
    parser.add_argument("--token", default=os.environ.get(TOKEN_ENV),
                        help=f"require 'Authorization: Bearer TOKEN' on the API; the page's "
                        f"password (default: ${TOKEN_ENV} if set)")
    parser.add_argument("--no-page", action="store_true", help="serve the API only")
    parser.add_argument("--engine", choices=ENGINES, default="local",
                        help="local: this process (default); ray: replicas on Ray Serve (API "
                        "only)")
    parser.add_argument("--replicas", type=positive_int, default=1,
                        help="--engine ray: copies of the app (default 1)")
    parser.add_argument("--replica-cpus", type=float, default=1.0,
                        help="--engine ray: CPUs of each replica (default 1)")
    parser.add_argument("--autoscaling", action="append", default=[], metavar="KEY=VALUE",
                        help="--engine ray: a field of Serve's autoscaling config, e.g. "
                        "min_replicas=1 max_replicas=8 target_ongoing_requests=2 (replaces "
                        "--replicas)")
    parser.add_argument("--ray-address", default=None,
                        help="--engine ray: the cluster to join (e.g. auto); default: a new "
                        "local instance")
    add_verbose_arg(parser)
    return parser


def settings_from_args(args: argparse.Namespace):
    """``ServeSettings`` of the flags (the model files checked)."""
    from rtpose.serve.app import ServeSettings
    from rtpose.serve.models import default_models, parse_model_spec

    if args.queue < 0 or args.timeout <= 0 or args.max_upload_mb <= 0:
        raise RtposeError("--queue must be >= 0, --timeout and --max-upload-mb > 0")
    models = dict(parse_model_spec(text) for text in args.models) or default_models()
    if not models:
        raise RtposeError("no model to serve: give --model NAME=PATH, or run "
                          "`bash model/get_mobilenet_thin.sh`")
    for name, path in models.items():
        if not path.is_file():
            raise RtposeError(f"--model {name}: no such weights file: {path}")
    return ServeSettings(
        models=models, default_model=next(iter(models)), runtime=args.runtime,
        precision=args.precision, preset=args.preset, workers=args.workers,
        queue_size=args.queue, timeout_s=args.timeout, max_upload_mb=args.max_upload_mb,
        max_image_pixels=args.max_image_pixels, max_video_frames=args.max_video_frames,
        token=args.token or None, page=not args.no_page)


def warn_if_exposed(host: str, token: str | None) -> None:
    """One warning line when ``host`` is not a loopback address."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        advice = "" if token else "; set --token to require one"
        print(f"warning: listening on {host}: anyone who can reach this port can use the "
              f"server{advice}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    with one_line_errors(), sigterm_as_interrupt():
        try:
            import fastapi  # noqa: F401
            import uvicorn

            if not args.no_page and args.engine == "local":
                import gradio  # noqa: F401
        except ImportError:
            raise RtposeError(WEB_MISSING) from None
        settings = settings_from_args(args)
        warn_if_exposed(args.host, settings.token)
        if args.engine == "ray":
            serve_on_ray(args, settings)
            return
        from rtpose.serve.app import create_app
        from rtpose.tools.common import quiet_native_stderr

        with quiet_native_stderr(not args.verbose):
            app = create_app(settings)
        config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                                limit_concurrency=args.max_connections,
                                timeout_graceful_shutdown=int(settings.timeout_s) + 5)
        server = uvicorn.Server(config)
        print(f"rtpose: http://{args.host}:{args.port}/ (API: /v1/pose, /docs; models: "
              f"{', '.join(settings.models)}); Ctrl+C or SIGTERM stops", flush=True)
    # uvicorn's own SIGINT/SIGTERM handling stops listening and answers the requests in hand;
    # then it raises the signal again, for the handler in force before: a normal stop here.
    with sigterm_as_interrupt(), contextlib.suppress(KeyboardInterrupt):
        server.run()
    stats = app.state.service.engine.stats()
    print(f"stopped: {stats['answered']} requests answered, {stats['refused']} refused")


def serve_on_ray(args: argparse.Namespace, settings) -> None:
    """``--engine ray``: the API on Ray Serve until SIGTERM or Ctrl+C."""
    import time

    from rtpose.serve import ray_serve

    autoscaling = ray_serve.parse_autoscaling(args.autoscaling)
    scale = f"autoscaling {autoscaling}" if autoscaling else f"{args.replicas} replicas"
    try:
        ray_serve.start(settings, args.host, args.port, args.ray_address,
                        replicas=args.replicas, autoscaling=autoscaling or None,
                        replica_cpus=args.replica_cpus)
        print(f"rtpose on Ray Serve: http://{args.host}:{args.port}/v1/pose ({scale}); Ctrl+C "
              "or SIGTERM stops", flush=True)
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        ray_serve.stop()  # Serve lets each replica answer the requests it holds
    print("stopped")


if __name__ == "__main__":
    main()
