"""Convert the .npy dump of dump_caffe_layers.py into Keras weights of the CMU model.

Output ending in .weights.h5: Keras 3 weights (the default, model/keras/model.weights.h5).
Output ending in plain .h5 (the original port's model.h5): the whole model in Keras' legacy HDF5
format, which keras.models.load_model and rtpose.models.cmu.load_cmu_weights both read.
"""

import argparse
from pathlib import Path

from rtpose.convert.caffe import convert_caffe_layers
from rtpose.tools.common import one_line_errors


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers-dir", type=Path, default=Path("model/caffe/layers"),
                        help="the .npy files of dump_caffe_layers.py (default: %(default)s)")
    parser.add_argument("--output", type=Path, default=Path("model/keras/model.weights.h5"),
                        help="Keras weights file, .weights.h5 or .h5 (default: %(default)s)")
    parser.add_argument("--stages", type=int, default=6, choices=range(1, 7), metavar="1-6",
                        help="stages of the model to convert (default 6)")
    args = parser.parse_args(argv)
    with one_line_errors():
        output = convert_caffe_layers(args.layers_dir, args.output, stages=args.stages)
    print(f"saved {output}")


if __name__ == "__main__":
    main()
