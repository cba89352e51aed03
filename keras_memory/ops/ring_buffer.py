"""A per-row ring buffer of keys and values with one shared write position."""

from keras import ops


def forget_rows(memory_keys, memory_values, memory_valid, reset):
    """Clears the rows that start a document: `(keys, values, valid bool)`."""
    keep = ops.logical_not(ops.cast(reset, "bool"))
    keep_entries = ops.reshape(keep, (-1, 1, 1, 1))
    return (
        ops.where(keep_entries, memory_keys, ops.zeros_like(memory_keys)),
        ops.where(keep_entries, memory_values, ops.zeros_like(memory_values)),
        ops.logical_and(keep[:, None], memory_valid > 0),
    )


def write_segment(memory_keys, memory_values, memory_valid, pointer, keys, values):
    """Writes one segment's keys and values at `pointer`, as one block.

    Every row writes a segment per step, so one write position serves all
    rows; the memory size must be a multiple of the segment length (checked
    by the layers), so a block never wraps. When segment lengths vary
    between calls the pointer need not be a multiple of this segment's
    length: a block that would run past the end starts over at 0 instead
    (the entries it skips are overwritten on the next lap). Otherwise the
    write would be clamped (JAX, TensorFlow: it overwrites the wrong
    entries) or fail (torch).

    Returns:
        `(keys, values, valid int32, next_pointer)`.
    """
    length = ops.shape(keys)[1]
    pointer = block_start(pointer, length, memory_keys.shape[1])
    return (
        ops.slice_update(memory_keys, (0, pointer, 0, 0), ops.cast(keys, memory_keys.dtype)),
        ops.slice_update(memory_values, (0, pointer, 0, 0), ops.cast(values, memory_values.dtype)),
        ops.slice_update(
            ops.cast(memory_valid, "int32"),
            (0, pointer),
            ops.ones((ops.shape(keys)[0], length), "int32"),
        ),
        (pointer + length) % memory_keys.shape[1],
    )


def block_start(pointer, length, memory_size):
    """Where `length` entries are written: at `pointer`, or at 0 if they would run past the end."""
    pointer = ops.cast(pointer, "int32")
    return ops.where(pointer + length > memory_size, ops.zeros_like(pointer), pointer)


def memory_state_shapes(batch_size, memory_size, num_heads, head_dim):
    """`{name: (shape, dtype)}` of a ring-buffer memory, for `MemoryLayer.state_shapes`."""
    memory_shape = (batch_size, memory_size, num_heads, head_dim)
    return {
        "memory_keys": (memory_shape, "float32"),
        "memory_values": (memory_shape, "float32"),
        "memory_valid": ((batch_size, memory_size), "int32"),
        "memory_pointer": ((), "int32"),
    }


def check_segment_fits(layer_name, memory_size, segment_length):
    """Raises ValueError unless a segment is a whole block of the ring."""
    if segment_length is not None and memory_size % segment_length:
        raise ValueError(
            f"Layer '{layer_name}': `memory_size` ({memory_size}) must be a multiple "
            f"of the segment length of `x` ({segment_length}), so each segment is one block of "
            "the ring."
        )
