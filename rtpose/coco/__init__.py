"""COCO data: person masks, the training HDF5 dataset, and keypoint evaluation."""
