"""Losses for training memory models."""

from keras_memory.losses.simctg import simctg_contrastive_loss

__all__ = ["simctg_contrastive_loss"]
