"""Backend-specific retrieval: approximate top-k kernels and ScaNN on the host."""

import keras
import numpy as np
from keras import ops

from keras_memory.backend.scann_index import ScannMemoryIndex


def approx_max_k(scores, k):
    """Approximate top-k over the last axis: `(values, int32 indices)`.

    `jax.lax.approx_max_k` on JAX and `tf.math.approx_max_k` on TensorFlow
    (TPU-optimised; exact on CPU); exact `keras.ops.top_k` on torch, which
    has no such kernel.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        values, indices = jax.lax.approx_max_k(scores, k)
    elif backend == "tensorflow":
        import tensorflow as tf

        values, indices = tf.math.approx_max_k(scores, k)
    else:
        values, indices = ops.top_k(scores, k)
    return values, ops.cast(indices, "int32")


def scann_search(queries, memory_keys, memory_valid, k, index=None):
    """ScaNN maximum-inner-product search on the host, one index per (row, head).

    Called from the graph through `jax.pure_callback`, `tf.numpy_function` or
    plain numpy on torch; returns int32 ids `(batch, heads, queries, k)`
    (-1 where a row has fewer than `k` valid entries), which the caller
    gathers on device.

    With `index` (a `ScannMemoryIndex`, one per memory layer) the host
    indexes follow the memory by ScaNN's dynamic updates and are rebuilt
    only by the policy in `keras_memory.backend.scann_index`; without it
    every call builds fresh indexes. Either way a tree index (sqrt(n)
    leaves, searching a quarter, asymmetric hashing, exact re-ranking of
    max(128, 16k, n/500) candidates) is used from 2,048 valid entries up,
    brute force below. The re-ranking depth is what buys recall, and it must
    grow with n: on 4,096 clustered entries (k = 8) re-ranking 32 candidates
    gave recall 0.77 and 128 gave 1.0; on 1M entries (k = 32) 512 gave 0.91
    and 2,048 gave 0.995 (benchmarks/knn_retrieval.py). Host calls do not
    run on TPU cores.
    """
    if index is None:
        index = ScannMemoryIndex()

    def host(q, m, v):
        return index.search(np.asarray(q), np.asarray(m), np.asarray(v), k)

    batch, num_queries, heads, _ = queries.shape
    out_shape = (batch, heads, num_queries, k)
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.pure_callback(
            host,
            jax.ShapeDtypeStruct(out_shape, np.int32),
            queries,
            memory_keys,
            memory_valid,
        )
    if backend == "tensorflow":
        import tensorflow as tf

        ids = tf.numpy_function(
            host,
            [queries, memory_keys, memory_valid],
            tf.int32,
            stateful=False,
        )
        ids.set_shape(out_shape)
        return ids
    arrays = [
        ops.convert_to_numpy(ops.convert_to_tensor(t)) for t in (queries, memory_keys, memory_valid)
    ]
    return ops.convert_to_tensor(host(*arrays), dtype="int32")
