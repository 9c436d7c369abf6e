"""Training: the fit loop (``trainer``) and its parts, one job each.

``config`` (the settings), ``feed`` (batches from the dataset servers), ``distribute`` (data
parallel devices and hosts; ``cluster`` reads ``TF_CONFIG``), ``initial_weights`` (ImageNet VGG19
or compatible weights), ``optimizer`` (Caffe SGD with learning-rate multipliers), ``schedule``
(the step policy), ``loss`` (the Euclidean stage losses), ``callbacks`` (per-epoch files) and
``checkpoints`` (the ``last.keras`` a run resumes from).
"""
