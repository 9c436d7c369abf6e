"""Pull a few batches from a running dataset server and print their shapes and the rate.

    python training/ds_generator_client.py --port 5555
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from itertools import islice

from rtpose.data.client import DataGeneratorClient
from rtpose.tools.common import one_line_errors


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Pull a few batches from a running dataset server and print their shapes "
        "and the rate (a check that the server works)."
    )
    parser.add_argument("--host", default="localhost", help="server host (default localhost)")
    parser.add_argument("--port", type=int, default=5555, help="server port (default 5555)")
    parser.add_argument("--batch-size", type=int, default=10, help="samples per batch")
    parser.add_argument("--batches", type=int, default=5, help="batches to pull (default 5)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait per sample")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.batches < 1:
        sys.exit(f"error: --batches must be at least 1, got {args.batches}")
    with one_line_errors():
        client = DataGeneratorClient(
            args.host, args.port, batch_size=args.batch_size, timeout=args.timeout
        )
        with client:
            start = time.perf_counter()
            for k, (inputs, outputs) in enumerate(islice(client.gen(), args.batches)):
                shapes = ", ".join(f"{a.shape} {a.dtype}" for a in inputs + outputs[:2])
                print(f"batch {k + 1}: {shapes} (+{len(outputs) - 2} more outputs)")
            rate = args.batches * args.batch_size / (time.perf_counter() - start)
            print(f"{rate:.1f} samples/s")


if __name__ == "__main__":
    main()
