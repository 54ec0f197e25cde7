"""Training: the trainer (optimizers, schedules), data-parallel training, mixed precision,
augmentation, data and data roots, fetching, the built-in tasks, run directories and checkpoints.

Builds on ``zoo.core.contract``; imports nothing from ``zoo.core.deploy``.
"""
