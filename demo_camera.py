"""Find people in a webcam or video stream in real time, draw them, write video and JSON lines.

The same as ``python -m rtpose.tools.demo_camera``; see ``--help``.
"""

from rtpose.tools.demo_camera import main

if __name__ == "__main__":
    main()
