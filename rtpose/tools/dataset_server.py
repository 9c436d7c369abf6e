"""Serve augmented training samples over ZeroMQ, wire-compatible with the original C++ server.

    python training/dataset_server.py dataset/train_dataset.h5 5555 --workers 2
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from rtpose.data.augment import DEFAULT_PARAMS, AugmentParams
from rtpose.data.server import LOOPBACK, ServerConfig, serve
from rtpose.tools.common import one_line_errors


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Serve augmented training samples over ZeroMQ (PUSH on tcp://BIND:PORT), "
        "wire-compatible with the original C++ rmpe_dataset_server. Stop with Ctrl+C."
    )
    parser.add_argument("dataset", type=Path, help="training HDF5 file (generate_hdf5.py)")
    parser.add_argument("port", type=int, help="TCP port to listen on, e.g. 5555")
    parser.add_argument("--bind", default=LOOPBACK, metavar="ADDRESS",
                        help="address to listen on (default %(default)s: this machine only); "
                             "0.0.0.0 serves other machines too")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--crop-size", type=int, default=DEFAULT_PARAMS.crop_size,
                        help="square crop size in pixels, a multiple of 8 (default 368)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed for a reproducible stream (exact with one worker)")
    parser.add_argument("--method", choices=("steps", "affine"), default=DEFAULT_PARAMS.method,
                        help="resampling: 'steps' as the original (default), 'affine' one warp")
    parser.add_argument("--no-augment", dest="augment", action="store_false",
                        help="a fixed set for validation: samples in file order, centred on "
                             "their main person, no random scale, rotation, offset or flip")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    params = AugmentParams(crop_size=args.crop_size, method=args.method)
    config = ServerConfig(args.dataset, args.port, args.workers, args.seed, params,
                          not args.quiet, args.augment, args.bind)
    with one_line_errors():
        serve(config)


if __name__ == "__main__":
    main()
