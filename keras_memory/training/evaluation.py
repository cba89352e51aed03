"""Exact per-token evaluation of a memory LM over an in-order stream."""

import math

import numpy as np
from keras import ops

from keras_memory.data.tokenizers.byte_tokenizer import PAD_ID


def stream_logits(model, stream, num_steps):
    """Yields `(step, inputs, targets, logits)` for the first `num_steps` steps of `stream`.

    Reads the stream in order from a fresh memory, exactly as in training: a
    stateful model's memory is reset first and after (and the model is built
    for the stream's batch if needed); a functional model's state is carried
    from step to step. Logits come back as numpy arrays.
    """
    if model.stateful:
        model.build_from_data(stream)
        model.reset_state()
    state = None
    try:
        for step in range(num_steps):
            inputs, targets = stream[step]
            if model.stateful:
                logits = model.predict_on_batch(inputs)
            else:
                logits, state = model(inputs, state=state)
            yield step, inputs, targets, ops.convert_to_numpy(logits)
    finally:
        if model.stateful:
            model.reset_state()


def token_nats(logits, targets):
    """Cross-entropy (nats) of each target token, in float64.

    Args:
        logits: float array `(..., vocab)`.
        targets: int array `(...)`.

    Returns:
        A float64 array of `targets`' shape.
    """
    logits = np.asarray(logits, dtype=np.float64)
    top = logits.max(-1)
    log_norm = np.log(np.exp(logits - top[..., None]).sum(-1)) + top
    return log_norm - np.take_along_axis(logits, np.asarray(targets)[..., None], -1)[..., 0]


def target_nats(logits, targets, pad_id):
    """Summed cross-entropy (nats) of the non-padding targets, and their count.

    Args:
        logits: float array `(..., vocab)`.
        targets: int array `(...)`.
        pad_id: int. Targets equal to it are not scored.

    Returns:
        `(nats, tokens)`: a float and an int.
    """
    mask = targets != pad_id
    return float((token_nats(logits, targets) * mask).sum()), int(mask.sum())


def evaluate_bits_per_token(model, stream, max_steps=None):
    """Mean bits per target token over `stream`, padding excluded.

    Reads the stream in order from a fresh memory, exactly as in training,
    and weights every real target token equally (Keras' `evaluate` averages
    per-batch means instead). With the byte tokenizer this is bits per byte.

    Args:
        model: a `MemoryLM` or `RetrofitLM`, stateful (its memory is reset
            first and after) or functional.
        stream: a `SegmentStream`; its `pad_id` targets are not scored.
        max_steps: int or None. Stop after this many steps.

    Returns:
        A dict with `bits_per_token`, `tokens` (the number scored) and
        `steps`.
    """
    steps = len(stream) if max_steps is None else min(max_steps, len(stream))
    # The stream's own padding id: a keras-hub vocabulary's id 0 is a real token.
    pad_id = getattr(stream, "special_ids", {}).get("pad_id", PAD_ID)
    total_nats, total_tokens = 0.0, 0
    for _, _, targets, logits in stream_logits(model, stream, steps):
        nats, tokens = target_nats(logits, targets, pad_id)
        total_nats += nats
        total_tokens += tokens
    return {
        "bits_per_token": total_nats / max(total_tokens, 1) / math.log(2),
        "tokens": total_tokens,
        "steps": steps,
    }
