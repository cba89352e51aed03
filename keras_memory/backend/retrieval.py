"""Backend-specific retrieval: approximate top-k kernels and ScaNN on the host."""

import keras
import numpy as np
from keras import ops

from keras_memory.backend.host_context import refuse_multi_device_jax, replica_row_offset
from keras_memory.backend.scann_index import ScannMemoryIndex


def top_k(scores, k):
    """Exact top-k over the last axis of `(batch, heads, ...)` scores.

    `keras.ops.top_k`, except in a JAX step sharded by `keras.distribution`:
    XLA's partitioner gathers `lax.top_k`'s whole operand onto every device
    (jax 0.10 on 8 CPU devices: a kNN layer's `(batch, heads, queries,
    memory)` scores were all-gathered over both mesh axes), while top-k along
    the last axis needs nothing from other rows or heads. There it runs in
    `shard_map` on each device's own rows (and heads, when the mesh has a
    second axis that divides them).

    Returns:
        `(values, int32 indices)`.
    """
    specs = _leading_shards(scores) if keras.backend.backend() == "jax" else None
    if specs is None:
        values, indices = ops.top_k(scores, k)
        return values, ops.cast(indices, "int32")
    import jax
    from jax.sharding import PartitionSpec

    mesh, axes = specs
    spec = PartitionSpec(*axes)
    values, indices = jax.shard_map(
        lambda part: tuple(jax.lax.top_k(part, k)),
        mesh=mesh,
        in_specs=spec,
        out_specs=(spec, spec),
    )(scores)
    return values, ops.cast(indices, "int32")


def _leading_shards(scores):
    """`(jax mesh, axes)` splitting `scores`' batch (and heads) over the active
    distribution's mesh, or None when there is nothing to split."""
    distribution = keras.distribution.distribution()
    if distribution is None or len(scores.shape) < 2:
        return None
    mesh = distribution.device_mesh
    sizes = dict(zip(mesh.axis_names, mesh.shape))
    batch_axis = distribution.batch_dim_name
    others = [name for name in mesh.axis_names if name != batch_axis]
    axes = [None] * len(scores.shape)
    if batch_axis in sizes and sizes[batch_axis] > 1 and scores.shape[0] is not None:
        if scores.shape[0] % sizes[batch_axis] == 0:
            axes[0] = batch_axis
    if len(others) == 1 and sizes[others[0]] > 1 and scores.shape[1] is not None:
        if scores.shape[1] % sizes[others[0]] == 0:
            axes[1] = others[0]
    if axes[0] is None and axes[1] is None:
        return None
    return mesh.backend_mesh, axes


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
    leaves, searching a tenth, asymmetric hashing, exact re-ranking of
    max(128, 16k, n/1000) candidates; see `scann_index.build_searcher`) is
    used from 2,048 valid entries up,
    brute force below. The re-ranking depth is what buys recall, and it must
    grow with n: on 4,096 clustered entries (k = 8) re-ranking 32 candidates
    gave recall 0.77 and 128 gave 1.0; on 1M entries (k = 32) 512 gave 0.91
    and 2,048 gave 0.995 (benchmarks/knn_retrieval.py). Host calls do not
    run on TPU cores.
    """
    if index is None:
        index = ScannMemoryIndex()

    def host(q, m, v, row_offset=0):
        return index.search(np.asarray(q), np.asarray(m), np.asarray(v), k, row_offset)

    batch, num_queries, heads, _ = queries.shape
    out_shape = (batch, heads, num_queries, k)
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        refuse_multi_device_jax("retrieval='scann'")
        return jax.pure_callback(
            host,
            jax.ShapeDtypeStruct(out_shape, np.int32),
            queries,
            memory_keys,
            memory_valid,
        )
    if backend == "tensorflow":
        import tensorflow as tf

        offset = replica_row_offset(ops.shape(queries)[0])
        ids = tf.numpy_function(
            host,
            [queries, memory_keys, memory_valid, offset],
            tf.int32,
            stateful=False,
        )
        ids.set_shape(out_shape)
        return ids
    arrays = [
        ops.convert_to_numpy(ops.convert_to_tensor(t)) for t in (queries, memory_keys, memory_valid)
    ]
    return ops.convert_to_tensor(host(*arrays), dtype="int32")
