"""Copies of a trained model with another memory size or stateful flag."""

from keras import ops

from keras_memory.layers.memory_layer import memory_layers
from keras_memory.ops.checks import check_int


def rebuild_model(model, *, memory_size=None, stateful=None):
    """Returns a copy of `model` with the same weights and a new, empty memory.

    The memory is not a weight: its size and whether it lives in variables
    (`stateful`) are free to change after training. A model trained with an
    8k memory can be evaluated or fine-tuned with 64k this way, and a
    stateful model trained with `fit` gets a functional twin for generation.

    Args:
        model: a built `MemoryLM` or `RetrofitLM` (e.g. from
            `keras.saving.load_model`).
        memory_size: int or None. New size of every kNN / dense-KV memory; it
            must be a multiple of the segment length you will feed.
        stateful: bool or None. New `stateful` flag of the model's layers.

    Returns:
        A new model of the same class, built, holding copies of `model`'s
        weights; its memory starts empty (stateful copies are built for the
        batch size of `model`). Returns `model` itself if nothing changes.

    Example:
    ```python
    model = keras.saving.load_model("trained_with_8k.keras")
    bigger = keras_memory.models.rebuild_model(model, memory_size=65536)
    ```
    """
    changes = {}
    if memory_size is not None:
        changes["memory_size"] = check_int("memory_size", memory_size)
    if stateful is not None:
        if stateful is not model.stateful:
            changes["stateful"] = bool(stateful)
    if not changes:
        return model
    if not model.built:
        raise ValueError("`model` must be built (called once or loaded) before it is rebuilt.")
    config = rewrite_config(model.get_config(), changes)
    copy = type(model).from_config(config)
    copy.build_from_config(model.get_build_config())
    sources, targets = model_weights(model), model_weights(copy)
    if len(sources) != len(targets):
        raise ValueError("The rebuilt model's weights do not match the original's.")
    for target, source in zip(targets, sources):
        # A copy, not the same buffer: JAX's jitted steps donate their
        # variables' buffers, which would delete the original's weights.
        target.assign(ops.copy(source))
    return copy


def rewrite_config(config, changes):
    """A copy of a model's config with every key in `changes` set to its new value.

    The keys are replaced at any depth (a model's config nests its layers'),
    and `build_config` entries are left out, so the copy builds anew.

    Args:
        config: dict. A `get_config()`, possibly nested.
        changes: dict. `{key: new value}`, e.g. `{"memory_size": 65536}`.

    Returns:
        The rewritten config.
    """
    if isinstance(config, dict):
        return {
            key: changes[key] if key in changes else rewrite_config(value, changes)
            for key, value in config.items()
            if key != "build_config"
        }
    if isinstance(config, list):
        return [rewrite_config(value, changes) for value in config]
    return config


def model_weights(model):
    """The model's weights without the memory-state variables, in `model.weights` order.

    What a copy of the model with another memory shares with it: the state
    variables' shapes change with the memory size and batch, and a copy
    starts with an empty memory.
    """
    state = {
        id(variable)
        for layer in memory_layers(model)
        for variable in layer.state_variables().values()
    }
    return [weight for weight in model.weights if id(weight) not in state]
