"""Evaluate a pose model on COCO keypoints with pycocotools, or score an existing results file.

The same as ``python -m rtpose.tools.evaluate_coco``; see ``--help``.
"""

from rtpose.tools.evaluate_coco import main

if __name__ == "__main__":
    main()
