"""Readers of foreign weight formats (Caffe, frozen TensorFlow graphs) into Keras weights."""
