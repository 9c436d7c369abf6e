"""Convert the .npy dump of dump_caffe_layers.py into Keras weights of the CMU model.

The same as ``python -m rtpose.tools.caffe_to_keras``; see ``--help``.
"""

from rtpose.tools.caffe_to_keras import main

if __name__ == "__main__":
    main()
