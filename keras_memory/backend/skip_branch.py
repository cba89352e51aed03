"""Skipping work on device when a runtime flag says its result is known."""

import keras
from keras import ops


def unless_known(needed, compute, known):
    """`compute()` where `needed` is true, else `known()`, without computing both.

    A device conditional (`keras.ops.cond`): under `jax.jit` and
    `tf.function` it stays in the compiled step, with no host round trip on
    a CPU or TPU. Torch runs eagerly, so its conditional reads `needed` on
    the host: on a CPU that costs nothing, but with CUDA tensors it would
    stall the host until the device catches up, once per call; there
    `compute()` always runs (the two branches must agree, so the result is
    the same either way).

    Args:
        needed: bool scalar tensor.
        compute: callable of no arguments; the result where `needed`.
        known: callable of no arguments returning what `compute()` would
            return where `needed` is false: same structure, shapes and dtypes.

    Returns:
        The result of one of them.
    """
    if keras.backend.backend() == "torch" and ops.convert_to_tensor(needed).device.type != "cpu":
        return compute()
    return ops.cond(needed, compute, known)
