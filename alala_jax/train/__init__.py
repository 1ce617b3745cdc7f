"""Training: TrainState, jit-compiled steps, the loop, checkpoints, progress and metrics."""
