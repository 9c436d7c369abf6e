"""Find the people in an image, draw their skeletons, and write them as OpenPose JSON.

The same as ``python -m rtpose.tools.demo_image``; see ``--help``.
"""

from rtpose.tools.demo_image import main

if __name__ == "__main__":
    main()
