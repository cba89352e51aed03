"""Starting a memory LM's word embedding from a pretrained model, and resizing it."""

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
