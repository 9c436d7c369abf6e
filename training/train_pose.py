"""Train the pose network on batches from the dataset servers: ``python training/train_pose.py``.

Start the servers first (``training/dataset_server.py``); see ``--help`` and docs/training.md.
"""

from rtpose.tools.train_pose import main

if __name__ == "__main__":
    main()
