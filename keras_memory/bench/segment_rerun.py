"""The generation baseline: what `generate` did before the incremental decoder.

Before `keras_memory.models.IncrementalDecoder`, a new token cost one eager
forward pass over the whole padded current segment: the prompt's complete
segments were read once each (carrying the memory state, as in training),
then every step re-ran the unfinished segment padded to `segment_length`
(padding follows the real tokens, so causal attention keeps their logits
exact) and read the logits of its last real token; when the segment filled
up, its new state became the memory and a new segment began. The cost per
token is one segment's forward pass, so it grows with the segment length.

`greedy_rerun` keeps that path, batched (every prompt of one length) and
greedy only, as the baseline `keras_memory.bench.generation` measures the
decoder against. It draws what `model.generate(..., sampler="greedy")`
draws: the same tokens, up to ties in the last bits of float32.
"""

import time

import numpy as np
from keras import ops

from keras_memory.models import rebuild_model


def greedy_rerun(model, prompts, segment_length, new_tokens):
    """Continues same-length prompts greedily, one eager whole-segment call per token.

    Args:
        model: a built `SegmentLM` (a stateful one is read through a
            functional twin, `rebuild_model(model, stateful=False)`).
        prompts: int array `(batch, prompt_length)`, each row a document's start.
        segment_length: int. The segment length the model was trained with.
        new_tokens: int. Tokens to add to each prompt.

    Returns:
        `(ids, seconds)`: the new ids, int32 `(batch, new_tokens)`, and the
        wall time of each step (its forward pass and the greedy choice), a
        list of `new_tokens` floats. The prompt's complete segments are read
        before the first step and not timed.
    """
    model = rebuild_model(model, stateful=False)
    prompts = np.asarray(prompts, dtype=np.int32)
    if prompts.ndim != 2 or prompts.shape[1] < 1:
        raise ValueError(f"`prompts` must be a (batch, length >= 1) array; got {prompts.shape}.")
    batch, pad_id = prompts.shape[0], model.pad_token_id
    state, first = None, True
    full = (prompts.shape[1] - 1) // segment_length * segment_length
    for start in range(0, full, segment_length):
        _, state = model(_inputs(prompts[:, start : start + segment_length], first), state=state)
        first = False
    context = prompts[:, full:]
    ids, seconds = [], []
    for _ in range(new_tokens):
        begin = time.perf_counter()
        padded = np.full((batch, segment_length), pad_id, np.int32)
        padded[:, : context.shape[1]] = context
        logits, next_state = model(_inputs(padded, first), state=state)
        last = ops.convert_to_numpy(logits[:, context.shape[1] - 1]).astype(np.float32)
        last[:, pad_id] = -np.inf  # padding is never drawn
        token = last.argmax(axis=1).astype(np.int32)
        seconds.append(time.perf_counter() - begin)
        ids.append(token)
        context = np.concatenate([context, token[:, None]], axis=1)
        if context.shape[1] == segment_length + 1:
            # The segment is full: its state is the memory; the new token starts the next.
            state, first, context = next_state, False, context[:, -1:]
    return np.stack(ids, axis=1) if ids else np.zeros((batch, 0), np.int32), seconds


def _inputs(tokens, first):
    return {"tokens": tokens, "reset": np.full((tokens.shape[0],), first)}
