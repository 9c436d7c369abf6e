"""Training: optimiser with learning-rate multipliers, Euclidean loss, step schedule."""
