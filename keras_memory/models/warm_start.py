"""Starting a memory LM from a trained model (its embedding, or every shared weight)."""

import numpy as np
from keras import ops

from keras_memory.models.rebuild import model_weights, rewrite_config


def warm_start_embedding(model, source, freeze=False):
    """Copies a pretrained word embedding into `model` (LSWT's warm start).

    Args:
        model: a built `MemoryLM` (or `MelodiLM`). Its vocabulary must be the
            source's and its embedding width (`embedding_dim`, or
            `hidden_dim` without one) the source's width: with
            `embedding_dim` the model's width is free.
        source: a keras-hub backbone (e.g. `keras_hub.models.OPTBackbone`),
            the name or directory of a keras-hub preset, or an array
            `(vocab_size, width)`.
        freeze: bool. Keep the embedding fixed in training (the tied output
            too). Defaults to False.

    Returns:
        `model`, with the embedding copied.

    Example:
    ```python
    model = keras_memory.models.MemoryLM.from_preset(
        "small_d512", kind="xl", vocab_size=50272, embedding_dim=768
    )
    model.build({"tokens": (1, 2048), "reset": (1,)})
    keras_memory.models.warm_start_embedding(model, "opt_125m_en", freeze=True)
    ```
    """
    if not model.built:
        raise ValueError(
            "Build `model` first: `model.build({'tokens': (batch, segment), 'reset': (batch,)})`."
        )
    if isinstance(source, str):
        import keras_hub  # noqa: PLC0415 (optional until used)

        source = keras_hub.models.Backbone.from_preset(source)
    weights = source.token_embedding.embeddings if hasattr(source, "token_embedding") else source
    weights = np.asarray(ops.convert_to_numpy(weights), dtype="float32")
    target = model.token_embedding.embeddings
    if weights.ndim != 2:
        raise ValueError(
            f"`source` must give an embedding of shape (vocab_size, width); got {weights.shape}."
        )
    vocab, width = weights.shape
    if vocab != model.vocab_size:
        raise ValueError(
            f"The source vocabulary has {vocab} tokens, the model's {model.vocab_size}: build "
            f"the model with vocab_size={vocab} (and the source's tokenizer), or resize it "
            "with resize_vocabulary()."
        )
    if width != target.shape[1]:
        raise ValueError(
            f"The source embedding is {width} wide, the model's {target.shape[1]}: build the "
            f"model with embedding_dim={width} to project it to any hidden_dim."
        )
    target.assign(ops.cast(weights, target.dtype))
    model.token_embedding.trainable = not freeze
    return model


def resize_vocabulary(model, vocab_size, seed=0):
    """A copy of `model` with `vocab_size` tokens; shared ids keep their rows.

    New rows are drawn like a fresh embedding (N(0, 1)); with a tied output,
    logits of the old tokens are unchanged for text made of old tokens.

    Args:
        model: a built `MemoryLM`.
        vocab_size: int. The new vocabulary size (larger or smaller).
        seed: int. Seed of the new rows.

    Returns:
        A new model of the same class and weights, its memory empty.
    """
    if not isinstance(vocab_size, int) or vocab_size < 1:
        raise ValueError(f"`vocab_size` must be a positive int; got {vocab_size!r}.")
    old = ops.convert_to_numpy(model.token_embedding.embeddings)
    rows = np.random.default_rng(seed).standard_normal((vocab_size, old.shape[1]))
    keep = min(vocab_size, old.shape[0])
    rows[:keep] = old[:keep]
    if not model.built:
        raise ValueError("`model` must be built (called once or loaded) before it is resized.")
    config = rewrite_config(model.get_config(), {"vocab_size": vocab_size})
    copy = type(model).from_config(config)
    copy.build_from_config(model.get_build_config())
    for target, source in zip(model_weights(copy), model_weights(model)):
        if target.path == copy.token_embedding.embeddings.path:
            target.assign(ops.cast(rows, target.dtype))
        else:
            target.assign(ops.copy(source))
    return copy


def warm_start_model(model, source):
    """Starts `model` from a trained `source`: every weight the two share is copied.

    The Memorizing Transformer paper's route to a memory (Wu et al., 2022):
    train a model without one, add the memory and fine-tune briefly. Build the model
    with the memory from the same preset as `source` (same sizes), call this,
    and train on: the embedding, the norms, every feed-forward and every
    attention projection come from `source`, and only what `source` lacks
    (the memory layer's gate, a scale or smearing weight of its own) starts
    fresh. Weights are matched by block and by their path inside it
    (`attention_1/qkv_projection/kernel` of block 1); the memory state is
    not a weight and starts empty. A weight of `source` that `model` lacks
    is left behind and reported: the paper's memory layer has no position
    bias, so an `xl` layer's is dropped unless the model is built with
    `local_position_bias=True` (then, with its gate shut, the memory layer
    computes what the `xl` layer did).

    Args:
        model: a built `MemoryLM` (or `MelodiLM`), e.g. kind `"memorizing"`.
        source: a built model of the same class and sizes, e.g. a trained
            `"xl"` model or one loaded with `keras.saving.load_model`.

    Returns:
        A dict: `"new"`, the paths of `model`'s weights that `source` lacks
        (they keep their initial values), and `"unused"`, those of
        `source`'s weights that `model` lacks.

    Example:
    ```python
    xl = keras_memory.models.MemoryLM.from_preset("tiny", kind="xl")
    ...  # build and train xl
    memorizing = keras_memory.models.MemoryLM.from_preset(
        "tiny", kind="memorizing", memory_size=2048, local_position_bias=True
    )
    memorizing.build({"tokens": (8, 128), "reset": (8,)})
    print(keras_memory.models.warm_start_model(memorizing, xl))
    # {'new': ['block_1/attention_1/memory_gate'], 'unused': []}
    ```
    """
    for name, value in (("model", model), ("source", source)):
        if not getattr(value, "built", False) or not hasattr(value, "blocks"):
            raise ValueError(
                f"`{name}` must be a built memory model (a MemoryLM called once, built or "
                f"loaded); got {type(value).__name__}."
            )
    if len(model.blocks) != len(source.blocks):
        raise ValueError(
            f"`model` has {len(model.blocks)} blocks and `source` {len(source.blocks)}: build "
            "them from the same preset and sizes."
        )
    sources, targets = _weights_by_place(source), _weights_by_place(model)
    shared = [place for place in targets if place in sources]
    if not shared:
        raise ValueError("`model` and `source` share no weight: build them from the same preset.")
    for place in shared:
        if tuple(targets[place].shape) != tuple(sources[place].shape):
            raise ValueError(
                f"`model` and `source` differ in size at {_named(model, place)}: "
                f"{tuple(targets[place].shape)} vs {tuple(sources[place].shape)}; build them "
                "from the same preset and sizes."
            )
    for place in shared:
        # A copy, not the same buffer: JAX's jitted steps donate their
        # variables' buffers, which would delete the source's weights.
        targets[place].assign(ops.copy(ops.cast(sources[place].value, targets[place].dtype)))
    return {
        "new": [_named(model, place) for place in targets if place not in sources],
        "unused": [_named(source, place) for place in sources if place not in targets],
    }


def _weights_by_place(model):
    """`{(block index or None, path inside it): weight}`, the memory state left out.

    A weight's place is its block and its path below that block (or below
    the model): the same in a model just built and one loaded from a file,
    whose weight paths may lack the model's and the blocks' names.
    """
    weights = {id(w): w for w in model_weights(model)}
    places = {}
    for index, block in enumerate(model.blocks):
        for weight in block.weights:
            if id(weight) in weights:
                places[index, _path_below(weight, (model.name, block.name))] = weights.pop(
                    id(weight)
                )
    for weight in weights.values():
        places[None, _path_below(weight, (model.name,))] = weight
    return places


def _path_below(weight, names):
    parts = weight.path.split("/")
    while len(parts) > 1 and parts[0] in names:
        parts = parts[1:]
    return "/".join(parts)


def _named(model, place):
    index, path = place
    return path if index is None else f"{model.blocks[index].name}/{path}"
