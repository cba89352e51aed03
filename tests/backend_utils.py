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


def gradients_of_weighted_sum(fn, inputs, cotangent):
    """Gradients of `sum(fn(*inputs) * cotangent)` for each of `inputs`, as numpy."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        def objective(*args):
            return (fn(*args) * cotangent).sum()

        grads = jax.grad(objective, argnums=tuple(range(len(inputs))))(*inputs)
        return [np.asarray(g) for g in grads]
    if backend == "tensorflow":
        import tensorflow as tf

        tensors = [tf.convert_to_tensor(x) for x in inputs]
        with tf.GradientTape() as tape:
            for t in tensors:
                tape.watch(t)
            y = tf.reduce_sum(fn(*tensors) * cotangent)
        grads = tape.gradient(y, tensors, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return [g.numpy() for g in grads]
    import torch

    tensors = [torch.tensor(np.asarray(x), requires_grad=True) for x in inputs]
    (fn(*tensors) * torch.tensor(cotangent)).sum().backward()
    return [np.zeros(t.shape, "float32") if t.grad is None else t.grad.numpy() for t in tensors]
