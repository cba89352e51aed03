"""The host call of a host-resident kNN memory, inside each backend's compiled step."""

import keras
import numpy as np
from keras import ops

from keras_memory.backend.host_context import host_call_mesh, replica_row_offset


def host_memory_lookup(memory, queries, keys, values, reset, step, pointer):
    """Runs `memory.lookup_and_write` (a `HostMemory`) from inside the step.

    JAX: `io_callback(ordered=True)`: the call writes, so it must run once
    per step, in program order, and never be dropped as unused or repeated.
    Under a data-parallel `keras.distribution` each device calls it with its
    own rows (`shard_map`; see `host_call_mesh`).
    TensorFlow: a stateful `tf.numpy_function` (XLA cannot compile it: a
    layer using it sets `supports_jit = False`, so a model compiled with
    `jit_compile=True` falls back to a graph without XLA, with Keras's
    warning). torch: numpy, eagerly, outside `torch.compile`'s graph
    (shape-only calls on the "meta" device return zeros and leave the memory
    alone).

    Args:
        memory: the layer's `HostMemory`.
        queries: float `(batch, Q, heads, dim)`; not differentiated. `Q` is
            `S`, or `S * R` for grouped queries folded into their key heads
            (`keras_memory.ops.query_groups.fold_query_groups`).
        keys: float `(batch, S, heads, dim)`, the segment's, written after the search.
        values: float `(batch, S, heads, dim)`, written with the keys.
        reset: bool `(batch,)`.
        step: int32 scalar, the device state's `memory_step`.
        pointer: int32 scalar, the device state's `memory_pointer`.

    Returns:
        `(keys, values, found)`: float32 `(batch, heads, Q, k, dim)` twice and
        bool `(batch, heads, Q, k)`.
    """
    arguments = [ops.stop_gradient(ops.cast(t, "float32")) for t in (queries, keys, values)]
    arguments += [ops.cast(reset, "bool"), ops.cast(step, "int32"), ops.cast(pointer, "int32")]
    return _host_call(memory.lookup_and_write, memory.num_neighbors, queries.shape, arguments)


def host_memory_search(memory, queries, step):
    """`memory.search`: the retrieval of `host_memory_lookup` without its write.

    A decoding step reads the memory of its segment's start; the segment is
    written once complete, by a full call. Returns as `host_memory_lookup`.
    """
    arguments = [ops.stop_gradient(ops.cast(queries, "float32")), ops.cast(step, "int32")]
    return _host_call(memory.search, memory.num_neighbors, queries.shape, arguments)


def _host_call(function, k, queries_shape, arguments):
    """Calls `function(*arguments[, row_offset])` on the host from the backend's step."""
    batch, length, heads, dim = queries_shape
    entries_shape = (batch, heads, length, k, dim)
    found_shape = (batch, heads, length, k)
    backend = keras.backend.backend()
    if backend == "jax":
        return _jax_host_call(function, arguments, entries_shape, found_shape)
    if backend == "tensorflow":
        import tensorflow as tf

        offset = replica_row_offset(ops.shape(arguments[0])[0])
        found_keys, found_values, found = tf.numpy_function(
            function,
            [*arguments, offset],
            [tf.float32, tf.float32, tf.bool],
            stateful=True,
        )
        found_keys.set_shape(entries_shape)
        found_values.set_shape(entries_shape)
        found.set_shape(found_shape)
        return found_keys, found_values, found
    if any(getattr(t, "device", None) is not None and t.device.type == "meta" for t in arguments):
        return (
            ops.zeros(entries_shape, "float32"),
            ops.zeros(entries_shape, "float32"),
            ops.zeros(found_shape, "bool"),
        )
    return _torch_host_call(function, arguments)


def _torch_host_call(function, arguments):
    import torch

    # Under torch.compile (Keras's jit_compile=True) the call is a graph
    # break by design: dynamo is told so instead of warning at every trace.
    @torch.compiler.disable
    def call(*arguments):
        arrays = [ops.convert_to_numpy(t) for t in arguments]
        return tuple(ops.convert_to_tensor(a) for a in function(*arrays))

    return call(*arguments)


def _jax_host_call(function, arguments, entries_shape, found_shape):
    import jax
    from jax.experimental import io_callback

    def call(*arguments, row_offset=0):
        rows = arguments[0].shape[0]
        shapes = [(rows, *entries_shape[1:]), (rows, *entries_shape[1:]), (rows, *found_shape[1:])]
        return io_callback(
            function,
            tuple(jax.ShapeDtypeStruct(s, d) for s, d in zip(shapes, (np.float32,) * 2 + (bool,))),
            *arguments,
            row_offset,
            ordered=True,
        )

    sharding = host_call_mesh("memory_placement='host'")
    if sharding is None:
        return call(*arguments)
    mesh, axis = sharding
    split = jax.sharding.PartitionSpec(axis)
    whole = jax.sharding.PartitionSpec()

    def per_device(*arguments):
        offset = jax.lax.axis_index(axis) * arguments[0].shape[0]
        return call(*arguments, row_offset=offset)

    return jax.shard_map(
        per_device,
        mesh=mesh,
        in_specs=tuple(split if len(a.shape) else whole for a in arguments),
        out_specs=(split, split, split),
    )(*arguments)
