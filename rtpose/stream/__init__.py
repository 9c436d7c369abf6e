"""Frames in, results out, without Keras or TensorFlow: opening a camera or a file is cheap.

- ``sources``: frames from a camera, a video file or image files behind one iterator;
- ``stream``: the pipelined stream (capture, network, decoding in their own threads), with
  person IDs across a video's frames by default (its ``track`` option, ``rtpose.track``);
- ``outputs``: annotated video, JSON lines, a window, a progress bar;
- ``images``: image and JSON files, read with one-line errors and written atomically.
"""
