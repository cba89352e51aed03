"""`generate`: continue a batch of prompts with a segment-reading model."""

import numpy as np

from keras_memory.models.incremental_decoder import IncrementalDecoder
from keras_memory.models.prompt_batch import PromptBatch
from keras_memory.models.samplers import get_sampler, next_tokens
from keras_memory.ops.checks import check_int


def generate(
    model,
    prompts,
    max_length=None,
    *,
    max_new_tokens=None,
    stop_token_ids="auto",
    sampler=None,
    segment_length=None,
    tokenizer=None,
    stream=None,
    return_logits=False,
):
    """Continues each prompt; see `SegmentLM.generate`, which documents the arguments."""
    batch = PromptBatch(prompts, model.vocab_size, tokenizer)
    ends = _row_ends(batch.lengths, max_length, max_new_tokens)
    stops = _stop_ids(stop_token_ids, batch.tokenizer, model.vocab_size)
    sampler = get_sampler(sampler if sampler is not None else model.default_sampler())
    segment_length = _segment_length(model, segment_length)
    if stream is not None and not callable(stream):
        raise ValueError(f"`stream` must be a callable or None; got {type(stream).__name__}.")
    functional, call, steps = model.generation_model()
    decoder = IncrementalDecoder(functional, segment_length, len(batch), call=call, steps=steps)

    total = int(ends.max())
    # The texts grow as tokens come: a generous `max_new_tokens` costs nothing up front.
    tokens = np.full((len(batch), int(batch.lengths.max()) + 1024), model.pad_token_id, np.int32)
    for row, prompt in enumerate(batch.rows):
        tokens[row, : len(prompt)] = prompt
    finished = np.zeros(len(batch), bool)
    produced = [[] for _ in batch.rows]
    logits_of = [[] for _ in batch.rows]
    start = int(batch.lengths.min())
    decoder.prefill(tokens, start)
    for position in range(start, total):
        in_prompt = position < batch.lengths
        active = ~in_prompt & ~finished & (position < ends)
        if not active.any() and not in_prompt.any():
            break
        if position == tokens.shape[1]:
            tokens = np.concatenate([tokens, np.full_like(tokens, model.pad_token_id)], axis=1)
        logits = decoder.logits_before(tokens, position)
        drawn = next_tokens(sampler, logits, model.pad_token_id)
        tokens[:, position] = np.where(
            in_prompt, tokens[:, position], np.where(active, drawn, model.pad_token_id)
        )
        for row in np.flatnonzero(active):
            produced[row].append(int(drawn[row]))
            if return_logits:
                logits_of[row].append(logits[row])
        finished |= active & np.isin(drawn, stops)
        if stream is not None:
            stream(np.where(active, drawn, -1))
    rows = [
        np.concatenate([prompt, np.array(new, np.int32)])
        for prompt, new in zip(batch.rows, produced)
    ]
    results = batch.results(rows)
    if not return_logits:
        return results
    vocab = model.vocab_size
    logits_of = [np.array(row, np.float32).reshape(-1, vocab) for row in logits_of]
    return results, (logits_of[0] if batch.single else logits_of)


def _row_ends(lengths, max_length, max_new_tokens):
    """The length each row may reach: `max_length`, or its prompt plus `max_new_tokens`."""
    if (max_length is None) == (max_new_tokens is None):
        raise ValueError("Give exactly one of `max_length` and `max_new_tokens`.")
    if max_new_tokens is not None:
        return lengths + check_int("max_new_tokens", max_new_tokens, 1)
    max_length = check_int("max_length", max_length, 1)
    if max_length <= lengths.max():
        raise ValueError(
            f"`max_length` ({max_length}) leaves no room after the longest prompt "
            f"({lengths.max()} tokens); it counts the prompt's tokens too."
        )
    return np.full_like(lengths, max_length)


def _stop_ids(stop_token_ids, tokenizer, vocab_size):
    if isinstance(stop_token_ids, str) and stop_token_ids == "auto":
        # keras-hub's default: a text prompt ends at its tokenizer's end token.
        return np.array([] if tokenizer is None else [tokenizer.eos_id], np.int32)
    if stop_token_ids is None:
        return np.zeros(0, np.int32)
    ids = np.asarray(stop_token_ids).reshape(-1)
    if ids.size and (
        not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0 or ids.max() >= vocab_size
    ):
        raise ValueError(
            f"`stop_token_ids` must be ids in [0, {vocab_size}), None or 'auto'; got "
            f"{stop_token_ids!r}."
        )
    return ids.astype(np.int32)


def _segment_length(model, segment_length):
    if segment_length is not None:
        return check_int("segment_length", segment_length)
    window = model.decoding_window_length()
    names = model.segment_state_names()
    if window is not None and not any(names or ()):
        # Window by window, nothing waits for a segment's end: any segment length is the same.
        return window
    raise ValueError(
        "`segment_length` is needed: this model writes memory once per segment "
        "(or reads whole segments), so give the segment length it was trained with."
    )
