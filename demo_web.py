"""Pose estimation in the browser and over HTTP: the page at http://127.0.0.1:8000/ and the API.

The same as ``python -m rtpose.tools.serve`` (``rtpose serve``); see ``--help``.
"""

from rtpose.tools.serve import main

if __name__ == "__main__":
    main()
