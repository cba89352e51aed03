"""Whether a device conditional is free where the library would skip work with one."""

import keras

from keras_memory.backend.device import device_name


def conditionals_are_free():
    """Whether `keras.ops.cond` costs nothing beyond the branch it runs.

    On a CPU and a TPU it does: JAX and TensorFlow keep the conditional in the
    compiled step, and torch's eager one reads its flag on the host, where it
    already is. On a GPU, XLA's conditional copies its flag to the host and
    waits for the device, and torch's reads it from the device: a stall each
    time, so work skipped that way is better done. (Under `jax.vmap` a
    conditional runs both branches.)

    Returns:
        bool.
    """
    if keras.backend.backend() == "jax":
        import jax

        return jax.default_backend() in ("cpu", "tpu")
    return device_name() == "cpu"
