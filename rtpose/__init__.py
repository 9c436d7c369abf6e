"""rtpose: realtime multi-person 2D pose estimation with Part Affinity Fields in Keras 3."""

__version__ = "0.1.0"
