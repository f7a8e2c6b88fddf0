"""Training: the loop (resume, mixed precision, DDP, TensorBoard), EMA, DP-SGD, the vocoder trainer (checkpoint
files are holdtts.utils.checkpoint, shared with the model loader)."""
