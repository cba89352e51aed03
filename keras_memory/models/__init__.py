"""Models assembled from the memory layers, and their presets."""

from typing import TYPE_CHECKING

from keras_memory.lazy_names import lazy_names
from keras_memory.memories.registry import MODEL_KINDS, make_blocks
from keras_memory.models.presets import MEMORY_SIZES, PRESETS

if TYPE_CHECKING:  # for type checkers and the API docs (griffe reads imports)
    from keras_memory.models.incremental_decoder import IncrementalDecoder
    from keras_memory.models.melodi_lm import MelodiLM
    from keras_memory.models.memory_lm import MemoryLM
    from keras_memory.models.rebuild import rebuild_model
    from keras_memory.models.retrofit_lm import RetrofitLM
    from keras_memory.models.segment_lm import SegmentLM
    from keras_memory.models.warm_start import (
        resize_vocabulary,
        warm_start_embedding,
        warm_start_model,
    )

# The models are imported on first use (a module `__getattr__`), not here:
# the presets are plain data the command line reads before Keras (and so its
# backend) is imported, and importing `keras_memory.models.presets` runs this
# `__init__` first.
_LAZY = {
    "IncrementalDecoder": "keras_memory.models.incremental_decoder",
    "MelodiLM": "keras_memory.models.melodi_lm",
    "MemoryLM": "keras_memory.models.memory_lm",
    "RetrofitLM": "keras_memory.models.retrofit_lm",
    "SegmentLM": "keras_memory.models.segment_lm",
    "rebuild_model": "keras_memory.models.rebuild",
    "resize_vocabulary": "keras_memory.models.warm_start",
    "warm_start_embedding": "keras_memory.models.warm_start",
    "warm_start_model": "keras_memory.models.warm_start",
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY)


__all__ = [
    "IncrementalDecoder",
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
    "warm_start_model",
]
