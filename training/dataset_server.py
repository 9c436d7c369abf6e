"""Serve augmented training samples over ZeroMQ: ``python training/dataset_server.py DATASET PORT``.

A drop-in for the original C++ ``rmpe_dataset_server``; see :mod:`rtpose.data.server`.
"""

from rtpose.tools.dataset_server import main

if __name__ == "__main__":
    main()
