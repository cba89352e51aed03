"""How many bytes of memory state a model carries per batch row."""

import math

import numpy as np

from keras_memory.layers.memory_layer import memory_layers
from keras_memory.layers.transformer_block import TransformerBlock


def memory_footprint(model):
    """Bytes of memory state per batch row, by layer and in total.

    Counts what a model carries from one segment to the next — XL caches,
    kNN and dense-KV memories, recurrent states, Melodi's short- and
    long-term memories, validity flags included — at the dtypes the state is
    stored in (float32 memories, int32 flags). Weights and activations are
    not counted. This is the quantity the Melodi paper compares with the
    Memorizing Transformer's (its 8x).

    Args:
        model: a built keras_memory model (`MemoryLM`, `MelodiLM`,
            `RetrofitLM`) or a built memory layer.

    Returns:
        A dict `{"total": bytes, "layers": {layer name: bytes}}` (layers
        without state are left out).

    Example:
    ```python
    model = keras_memory.models.MemoryLM.from_preset("tiny", kind="melodi")
    model.build({"tokens": (1, 128), "reset": (1,)})
    keras_memory.training.memory_footprint(model)["total"]
    ```
    """
    if not model.built:
        raise ValueError(
            "`model` must be built (called once, or `model.build(...)`) to know its state's shapes."
        )
    footprint = _layer_state_bytes(model, 1)
    return {"total": sum(footprint.values()), "layers": footprint}


def state_bytes(model, batch_size):
    """Bytes the memory state of `model` takes for `batch_size` rows, built or not.

    The shapes come from the layers' configuration, so the figure is known
    before any variable is allocated: `keras-memory train` refuses a memory
    that would not fit the machine with it, before trying to allocate it.

    Args:
        model: a keras_memory model or memory layer (built or not).
        batch_size: int >= 1.

    Returns:
        int: bytes of every memory-state variable together (of an unbuilt
        model: of those whose shape its configuration fixes).

    Example:
    ```python
    model = keras_memory.models.MemoryLM.from_preset("tiny", kind="memorizing")
    keras_memory.training.state_bytes(model, batch_size=8)
    ```
    """
    return sum(_layer_state_bytes(model, batch_size).values())


def _layer_state_bytes(model, batch_size):
    sizes = {}
    for layer in memory_layers(model):
        # A block's state is its attention layer's: count it once.
        if isinstance(layer, TransformerBlock):
            continue
        # A shape the layer learns only when built (None) is left out: for an
        # unbuilt model the figure is a lower bound that holds every memory.
        size = sum(
            math.prod(shape) * np.dtype(dtype).itemsize
            for shape, dtype in layer.state_shapes(batch_size).values()
            if None not in shape
        )
        if size:
            sizes[layer.name] = size
    return sizes
