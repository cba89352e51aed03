"""Sharding keras-memory models over many devices with `keras.distribution`.

Memory is per batch row, so it is sharded with the batch: a device holds the
memory of the rows it computes and nothing else. Attention memories of shape
`(batch, length, heads, head_dim)` are also split over heads on the model
axis, the same split as the query/key/value projections, so the attention of
a head reads a memory on the device that computed it.

`keras.distribution` runs on the JAX backend (Keras has no distribution
backend for torch; TensorFlow has `tf.distribute`: see
`recipes/distributed_tf.py` and docs/scale-out.md).
"""

import keras

# Variable-path patterns (matched whole, as `keras.distribution.LayoutMap`
# does) and the mesh axes of each dimension. "batch" and "model" are
# placeholders for the mesh's axis names. Patterns start at a path separator
# so that, e.g., `qkv_projection` never also matches `state_qkv_projection`.
_ANY = "(.*/)?"
WEIGHT_LAYOUTS = {
    "token_embedding/embeddings": (None, "model"),
    "qkv_projection/kernel": (None, "model"),
    "output_projection/kernel": ("model", None),
    "ffn/gate/kernel": (None, "model"),
    "ffn/intermediate/kernel": (None, "model"),
    "ffn/output/kernel": ("model", None),
    # Block-Recurrent's state-side projections are split like the token side.
    "state_qkv_projection/kernel": (None, "model"),
    "token_query2_projection/kernel": (None, "model"),
    "state_output_projection/kernel": ("model", None),
    "state_ffn_hidden/kernel": (None, "model"),
    "state_ffn_output/kernel": ("model", None),
}
# Every memory-state variable (`MemoryLayer.build_state` names them
# `state_<name>`): batch first, and heads where the state has them.
STATE_LAYOUTS = {
    # Transformer-XL cache and its compressed memory: (batch, W, heads, head_dim).
    "state_keys": ("batch", None, "model", None),
    "state_values": ("batch", None, "model", None),
    "state_valid": ("batch",),
    "state_compressed_keys": ("batch", None, "model", None),
    "state_compressed_values": ("batch", None, "model", None),
    "state_compressed_valid": ("batch", None),
    # kNN memory: (batch, memory_size, heads, head_dim); one ring pointer for
    # every row, replicated.
    "state_memory_keys": ("batch", None, "model", None),
    "state_memory_values": ("batch", None, "model", None),
    "state_memory_valid": ("batch", None),
    "state_memory_pointer": (),
    # Block-Recurrent: (batch, num_states, hidden).
    "state_recurrent_state": ("batch", None, None),
    "state_recurrent_valid": ("batch",),
    # Melodi: (batch, slots, hidden).
    "state_short_memory": ("batch", None, None),
    "state_short_valid": ("batch",),
    "state_long_memory": ("batch", None, None),
    "state_long_valid": ("batch", None),
}


def layout_map(device_mesh, model_parallel_dim_name="model", data_parallel_dim_name="batch"):
    """Returns the `keras.distribution.LayoutMap` of a keras-memory model.

    Weights are split over heads and the feed-forward width on the model
    axis (Megatron-style: column-split in, row-split out); memory state is
    split over the batch axis (and heads), never replicated. Variables no
    pattern names (norm scales, biases, position-bias tables) are replicated.
    The keys' heads are split as the queries' are: with grouped queries,
    `num_key_value_heads` must be a multiple of the model axis's size, as
    `num_heads` must (one key head: a model axis of size 1).

    Args:
        device_mesh: `keras.distribution.DeviceMesh` with both axis names.
        model_parallel_dim_name: str. The mesh axis that splits heads.
        data_parallel_dim_name: str. The mesh axis that splits the batch.

    Returns:
        A `keras.distribution.LayoutMap` for `keras.distribution.ModelParallel`.

    Example:
    ```python
    mesh = keras.distribution.DeviceMesh((4, 2), ("batch", "model"))
    distribution = keras.distribution.ModelParallel(
        layout_map=keras_memory.distribution.layout_map(mesh),
        batch_dim_name="batch",
    )
    with distribution.scope():
        model = keras_memory.models.MemoryLM.from_preset("tiny", kind="memorizing", stateful=True)
    ```
    """
    names = set(device_mesh.axis_names)
    for arg, name in (
        ("model_parallel_dim_name", model_parallel_dim_name),
        ("data_parallel_dim_name", data_parallel_dim_name),
    ):
        if name not in names:
            raise ValueError(
                f"`{arg}` must name an axis of the device mesh {device_mesh.axis_names}; "
                f"got {name!r}."
            )
    rename = {"model": model_parallel_dim_name, "batch": data_parallel_dim_name}
    result = keras.distribution.LayoutMap(device_mesh)
    for suffix, axes in {**WEIGHT_LAYOUTS, **STATE_LAYOUTS}.items():
        result[_ANY + suffix] = tuple(rename.get(axis, axis) for axis in axes)
    return result


def model_parallel(devices=None, model_parallel_size=1):
    """Returns a `ModelParallel` distribution over `devices` for keras-memory models.

    The devices form a `(batch, model)` mesh of shape `(len(devices) //
    model_parallel_size, model_parallel_size)`. With `model_parallel_size=1`
    this is data parallelism in which, unlike `keras.distribution.DataParallel`
    (which replicates every variable), each device keeps only its rows'
    memory.

    Args:
        devices: list of device strings (`keras.distribution.list_devices()`
            when None).
        model_parallel_size: int. Devices that share one batch shard and
            split its heads; must divide the number of devices.

    Returns:
        A `keras.distribution.ModelParallel`, batch axis "batch".
    """
    devices = devices if devices is not None else keras.distribution.list_devices()
    count = len(devices)
    if (
        isinstance(model_parallel_size, bool)
        or not isinstance(model_parallel_size, int)
        or model_parallel_size < 1
        or count % model_parallel_size
    ):
        raise ValueError(
            "`model_parallel_size` must be a positive int dividing the number of "
            f"devices ({count}); got {model_parallel_size!r}."
        )
    mesh = keras.distribution.DeviceMesh(
        (count // model_parallel_size, model_parallel_size), ("batch", "model"), devices
    )
    return keras.distribution.ModelParallel(layout_map=layout_map(mesh), batch_dim_name="batch")


def state_layouts(model):
    """Returns `{variable path: mesh axes}` for a built model's memory state.

    What `layout_map` assigns to each state variable, with the default axis
    names "batch" and "model", for checking a distribution (the variables'
    actual shardings are backend values).

    Args:
        model: a built stateful keras-memory model.
    """
    axes = {}
    for variable in model.non_trainable_variables:
        name = variable.path.rsplit("/", 1)[-1]
        if name.startswith("state_"):
            if name not in STATE_LAYOUTS:
                raise ValueError(f"No layout for memory-state variable {variable.path!r}.")
            axes[variable.path] = STATE_LAYOUTS[name]
    return axes
