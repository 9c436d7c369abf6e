"""The openvino runtime (OpenVINO Runtime on the CPU; the ``openvino`` extra), one job a module:

- ``network``: ``OpenVinoNetwork``, an IR compiled at an explicit precision (fp32, bf16,
  int8) with ``network(batch) -> (heat, paf)`` and ``submit`` for batches in flight;
- ``cache``: the Keras model converted to an IR once and cached beside its weights, checked
  against them and against its own recorded SHA-256 (``openvino_network``, ``openvino_ir``);
- ``quantize``: int8 by NNCF over calibration batches the caller gives
  (``rtpose.runtime.calibration`` prepares them from a folder of training images).

Importing the package imports neither OpenVINO nor Keras.
"""
