"""Running a batched computation one leading slice at a time where that is faster."""

import keras
from keras import ops


def map_over_leading_axis(fn, *tensors):
    """Returns `fn(*tensors)`, on JAX's CPU computed one leading slice at a time.

    `fn` takes tensors sharing a leading axis of size `n` and returns a tensor
    or a tuple of tensors with that leading axis, each slice depending only on
    the same slice of the inputs. Elsewhere this is one call of `fn`. On
    JAX's CPU it is `jax.lax.map` over the slices, each call seeing a leading
    axis of 1: jax 0.10's CPU runs a batched matmul several times slower than
    the same matmuls one by one (16 products `(256, 64) x (64, 16384)`: 188 ms
    batched, 76 ms as a `lax.map` on 2 cores, `benchmarks/cpu_kernels.py
    --case knn_search`), and a slice's intermediate
    tensors are `n` times smaller. Not inside a `keras.distribution`, whose
    sharding a sequential loop over rows would undo.

    Args:
        fn: callable of `len(tensors)` tensors.
        *tensors: tensors with a common leading axis.

    Returns:
        What `fn` returns.
    """
    if not slicing_is_faster():
        return fn(*tensors)
    import jax

    def one(slices):
        out = fn(*(ops.expand_dims(part, 0) for part in slices))
        return jax.tree_util.tree_map(lambda part: part[0], out)

    return jax.lax.map(one, tuple(ops.convert_to_tensor(t) for t in tensors))


def slicing_is_faster():
    """True on JAX with the CPU as the default device and no distribution."""
    if keras.backend.backend() != "jax" or keras.distribution.distribution() is not None:
        return False
    import jax

    return jax.default_backend() == "cpu"
