"""The training loop and what it is made of: steps, stages, progress, checkpoints, optimizers, rank helpers."""
