"""Optimizers for training memory models."""

from keras_memory.optimizers.sophia import Sophia

__all__ = ["Sophia"]
