"""ControlNet "openpose" conditioning images and pose JSON, as controlnet_aux makes them.

The same as ``python -m rtpose.tools.controlnet`` (``rtpose controlnet``); see ``--help``.
"""

from rtpose.tools.controlnet import main

if __name__ == "__main__":
    main()
