"""rtpose: realtime multi-person 2D pose estimation with Part Affinity Fields in Keras 3."""

import os

# TensorFlow's start-up chatter (CUDA probing, CPU features) is noise for rtpose's users; a value
# set by the user wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
