"""Exact per-token evaluation of a memory LM over an in-order stream."""

import math

import numpy as np
from keras import ops

from keras_memory.data.byte_tokenizer import PAD_ID


def evaluate_bits_per_token(model, stream, max_steps=None):
    """Mean bits per target token over `stream`, padding excluded.

    Reads the stream in order from a fresh memory, exactly as in training,
    and weights every real target token equally (Keras' `evaluate` averages
    per-batch means instead). With the byte tokenizer this is bits per byte.

    Args:
        model: a `MemoryLM`, stateful (its memory is reset first and after)
            or functional.
        stream: a `SegmentStream`.
        max_steps: int or None. Stop after this many steps.

    Returns:
        A dict with `bits_per_token`, `tokens` (the number scored) and
        `steps`.
    """
    steps = len(stream) if max_steps is None else min(max_steps, len(stream))
    if model.stateful:
        model.reset_state()
    state, total_nats, total_tokens = None, 0.0, 0
    for step in range(steps):
        inputs, targets = stream[step]
        if model.stateful:
            logits = model.predict_on_batch(inputs)
        else:
            logits, state = model(inputs, state=state)
        logits = ops.convert_to_numpy(logits).astype(np.float64)
        mask = targets != PAD_ID
        log_norm = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1))
        log_norm += logits.max(-1)
        picked = np.take_along_axis(logits, targets[..., None], -1)[..., 0]
        total_nats += float(((log_norm - picked) * mask).sum())
        total_tokens += int(mask.sum())
    if model.stateful:
        model.reset_state()
    return {
        "bits_per_token": total_nats / max(total_tokens, 1) / math.log(2),
        "tokens": total_tokens,
        "steps": steps,
    }
