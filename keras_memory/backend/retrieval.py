"""Backend-specific retrieval: approximate top-k kernels and ScaNN on the host."""

import math

import keras
import numpy as np
from keras import ops

# Below this many valid entries a ScaNN tree is no faster than scoring everything.
SCANN_BRUTE_FORCE_BELOW = 2048


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


def _scann_host(queries, memory_keys, memory_valid, k):
    """numpy: `(batch, heads, queries, k)` int32 ids into the memory, -1 where none."""
    try:
        from scann.scann_ops.py import scann_ops_pybind
    except ImportError as error:  # pragma: no cover - scann is a dependency
        raise ImportError(
            "retrieval='scann' needs the `scann` package (pip install scann==1.4.2; "
            "Linux x86_64 wheels only)."
        ) from error
    batch, num_queries, heads, _ = queries.shape
    result = np.full((batch, heads, num_queries, k), -1, dtype=np.int32)
    for b in range(batch):
        ids = np.flatnonzero(memory_valid[b])
        if not len(ids):
            continue
        n = min(k, len(ids))
        for h in range(heads):
            database = np.ascontiguousarray(memory_keys[b, ids, h], dtype=np.float32)
            builder = scann_ops_pybind.builder(database, n, "dot_product")
            if len(ids) < SCANN_BRUTE_FORCE_BELOW:
                searcher = builder.score_brute_force().build()
            else:
                leaves = int(math.sqrt(len(ids)))
                searcher = (
                    builder.tree(
                        num_leaves=leaves,
                        num_leaves_to_search=max(1, leaves // 4),
                        training_sample_size=len(ids),
                    )
                    .score_ah(2, anisotropic_quantization_threshold=0.2)
                    .reorder(max(128, 16 * n, len(ids) // 500))
                    .build()
                )
            found, _ = searcher.search_batched(
                np.ascontiguousarray(queries[b, :, h], dtype=np.float32), final_num_neighbors=n
            )
            result[b, h, :, :n] = ids[found.astype(np.int64)]
    return result


def scann_search(queries, memory_keys, memory_valid, k):
    """ScaNN maximum-inner-product search on the host, one index per (row, head).

    Called from the graph through `jax.pure_callback`, `tf.numpy_function` or
    plain numpy on torch; returns int32 ids `(batch, heads, queries, k)`
    (-1 where a row has fewer than `k` valid entries), which the caller
    gathers on device. The indices are rebuilt on every call, because the
    memory changes every segment: a tree index (sqrt(n) leaves, searching a
    quarter, asymmetric hashing, exact re-ranking of max(128, 16k, n/500)
    candidates) from 2,048 valid entries up, brute force below. The
    re-ranking depth is what buys recall, and it must grow with n: on 4,096
    clustered entries (k = 8) re-ranking 32 candidates gave recall 0.77 and
    128 gave 1.0; on 1M entries (k = 32) 512 gave 0.91 and 2,048 gave 0.995
    (benchmarks/knn_retrieval.py). Rebuilding per call is slow (about 3 s per
    65k-entry index on two CPU cores): ScaNN suits inference over memories
    too large for the device, not training. Host calls do not run on TPU
    cores.
    """
    batch, num_queries, heads, _ = queries.shape
    out_shape = (batch, heads, num_queries, k)
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.pure_callback(
            lambda q, m, v: _scann_host(np.asarray(q), np.asarray(m), np.asarray(v), k),
            jax.ShapeDtypeStruct(out_shape, np.int32),
            queries,
            memory_keys,
            memory_valid,
        )
    if backend == "tensorflow":
        import tensorflow as tf

        ids = tf.numpy_function(
            lambda q, m, v: _scann_host(q, m, v, k),
            [queries, memory_keys, memory_valid],
            tf.int32,
            stateful=False,
        )
        ids.set_shape(out_shape)
        return ids
    arrays = [
        ops.convert_to_numpy(ops.convert_to_tensor(t)) for t in (queries, memory_keys, memory_valid)
    ]
    return ops.convert_to_tensor(_scann_host(*arrays, k), dtype="int32")
