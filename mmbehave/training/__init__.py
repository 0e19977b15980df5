"""Training: the loop, metrics, checkpoints and experiment tracking."""
