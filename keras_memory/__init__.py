"""keras-memory: Keras 3 memory layers for long-context language models."""

from keras_memory import layers, models, ops
from keras_memory.version import __version__

__all__ = ["__version__", "layers", "models", "ops"]
