"""Losses for training memory models."""

from keras_memory.memories.lswt.simctg import simctg_contrastive_loss

__all__ = ["simctg_contrastive_loss"]
