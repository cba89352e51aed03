"""keras-memory: Keras 3 memory layers for long-context language models."""

from keras_memory import (
    data,
    distribution,
    generation,
    layers,
    losses,
    memories,
    models,
    ops,
    optimizers,
    training,
)
from keras_memory.version import __version__

__all__ = [
    "__version__",
    "data",
    "distribution",
    "generation",
    "memories",
    "layers",
    "losses",
    "models",
    "ops",
    "optimizers",
    "training",
]
