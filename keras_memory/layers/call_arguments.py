"""Keras's conversion of a call's arguments, without rounding the memory state."""

import keras
import numpy as np
from keras import ops


def convert_call_arguments(layer, args, kwargs):
    """Returns `(args, kwargs)` converted as Keras converts a layer's arguments, `state` apart.

    Keras turns arrays into tensors and casts every floating argument to the
    compute dtype. A memory state must keep its own dtype: under a mixed
    policy the float32 cache or memory a functional call returns would come
    back bfloat16 on the next call (rounded every segment, and traced anew).
    So `state` (a dict, or a model's list of dicts) only has its numpy arrays
    made tensors. Layers and models that call this from `__call__` set
    `_convert_input_args = False`.

    Args:
        layer: the `keras.layers.Layer` being called.
        args: tuple. Its positional arguments.
        kwargs: dict. Its keyword arguments.

    Returns:
        `(args, kwargs)`.
    """

    def autocast(value):
        return layer.dtype_policy.convert_input(value, layer.autocast, layer.input_dtype)

    def as_tensor(value):
        return ops.convert_to_tensor(value) if isinstance(value, np.ndarray) else value

    args = keras.tree.map_structure(autocast, args)
    kwargs = {
        name: keras.tree.map_structure(as_tensor if name == "state" else autocast, value)
        for name, value in kwargs.items()
    }
    return args, kwargs
