"""Models assembled from the memory layers, and their presets."""

from keras_memory.memories.registry import MODEL_KINDS, make_blocks
from keras_memory.models.melodi_lm import MelodiLM
from keras_memory.models.memory_lm import MemoryLM
from keras_memory.models.presets import MEMORY_SIZES, PRESETS
from keras_memory.models.rebuild import rebuild_model
from keras_memory.models.retrofit_lm import RetrofitLM
from keras_memory.models.segment_lm import SegmentLM
from keras_memory.models.warm_start import resize_vocabulary, warm_start_embedding

__all__ = [
    "MEMORY_SIZES",
    "MODEL_KINDS",
    "PRESETS",
    "MelodiLM",
    "MemoryLM",
    "RetrofitLM",
    "SegmentLM",
    "make_blocks",
    "rebuild_model",
    "resize_vocabulary",
    "warm_start_embedding",
]
