"""How many bytes of memory state a model carries per batch row."""

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
    footprint = {}
    for layer in memory_layers(model):
        # A block's state is its attention layer's: count it once.
        if isinstance(layer, TransformerBlock):
            continue
        size = sum(
            int(np.prod(shape)) * np.dtype(dtype).itemsize
            for shape, dtype in layer.state_shapes(1).values()
        )
        if size:
            footprint[layer.name] = size
    return {"total": sum(footprint.values()), "layers": footprint}
