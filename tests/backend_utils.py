"""Backend-specific test helpers (tests may touch the backends directly)."""

import keras
import numpy as np


def input_gradient(fn, x, output_index):
    """Gradient of `sum(fn(x)[:, output_index])` with respect to `x`, as numpy."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(lambda v: fn(v)[:, output_index].sum())(x))
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.reduce_sum(fn(x)[:, output_index])
        return tape.gradient(y, x, unconnected_gradients=tf.UnconnectedGradients.ZERO).numpy()
    import torch

    x = torch.tensor(np.asarray(x), requires_grad=True)
    y = fn(x)[:, output_index].sum()
    if y.requires_grad:
        y.backward()
    # No grad path at all means a zero gradient.
    return np.zeros(x.shape, "float32") if x.grad is None else x.grad.numpy()
