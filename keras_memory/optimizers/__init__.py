"""Optimizers for training memory models."""

from keras_memory.memories.lswt.sophia import Sophia

__all__ = ["Sophia"]
