"""Models assembled from the memory layers, and their presets."""

from keras_memory.models.blocks import MODEL_KINDS, make_blocks
from keras_memory.models.memory_lm import MemoryLM
from keras_memory.models.presets import MEMORY_SIZES, PRESETS

__all__ = ["MEMORY_SIZES", "MODEL_KINDS", "PRESETS", "MemoryLM", "make_blocks"]
