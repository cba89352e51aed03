"""Training pieces: evaluation, checkpoints."""

from keras_memory.training.checkpoints import (
    CheckpointEvery,
    load_checkpoint,
    save_checkpoint,
)
from keras_memory.training.evaluation import evaluate_bits_per_token

__all__ = ["CheckpointEvery", "evaluate_bits_per_token", "load_checkpoint", "save_checkpoint"]
