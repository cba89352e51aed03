"""Training pieces: evaluation, checkpoints, NaN/Inf checks, progress lines."""

from keras_memory.training.checkpoints import (
    CheckpointEvery,
    checkpoint_path,
    load_checkpoint,
    read_losses,
    release_workdir_lock,
    remove_partial_checkpoints,
    save_checkpoint,
    workdir_lock,
)
from keras_memory.training.evaluation import evaluate_bits_per_token
from keras_memory.training.finite_check import (
    FiniteCheck,
    NonFiniteError,
    check_finite,
    memory_state_variables,
)
from keras_memory.training.footprint import memory_footprint, state_bytes
from keras_memory.training.memory_state import load_memory_state, save_memory_state
from keras_memory.training.progress_log import ProgressLog
from keras_memory.training.recall import evaluate_recall, recall_by_distance

__all__ = [
    "CheckpointEvery",
    "FiniteCheck",
    "NonFiniteError",
    "ProgressLog",
    "check_finite",
    "checkpoint_path",
    "evaluate_bits_per_token",
    "evaluate_recall",
    "load_checkpoint",
    "load_memory_state",
    "memory_footprint",
    "state_bytes",
    "memory_state_variables",
    "read_losses",
    "recall_by_distance",
    "release_workdir_lock",
    "remove_partial_checkpoints",
    "save_checkpoint",
    "save_memory_state",
    "workdir_lock",
]
