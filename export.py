"""Export a pose network as a TensorFlow SavedModel, an ONNX file or a TFLite file.

The same as ``python -m rtpose.tools.export``; see ``--help``.
"""

from rtpose.tools.export import main

if __name__ == "__main__":
    main()
