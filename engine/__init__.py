"""The shared library: config, builders, training/evaluation loops, checkpoints, logging."""
