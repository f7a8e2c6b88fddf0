"""Training: the loop (resume, mixed precision, DDP, TensorBoard), checkpoints, EMA."""
