"""Training samples: augmentation, label maps, and the ZeroMQ data server and client."""
