"""Dump the convolution weights of the CMU Caffe model to .npy files, without Caffe.

The same as ``python -m rtpose.tools.dump_caffe_layers``; see ``--help``.
"""

from rtpose.tools.dump_caffe_layers import main

if __name__ == "__main__":
    main()
