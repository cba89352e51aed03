"""Exact token-by-token decoding of a segment-reading model, one window per token."""

import numpy as np
from keras import ops

from keras_memory.backend.compiled_call import compiled_model_call
from keras_memory.ops.checks import check_int


class IncrementalDecoder:
    """Gives the logits of each next token of a batch of growing texts, as training computes them.

    A model trained on segments of `S` tokens computes, for every token,
    what a forward pass over its document segment by segment computes. The
    decoder gets the same numbers at a cost per token that does not grow
    with `S`: it keeps the memory state at the start of the window that
    holds the newest token and re-reads only that window, padded (padding
    follows every real token, so causal attention keeps the real tokens'
    logits exact). When the window is complete its state is kept and the
    next window begins. Entries that a layer writes once per segment (a
    kNN memory, a compressed memory) are held at their segment-start values
    within a segment, and the completed segment is read once more from its
    start to write them, as training does. A model whose layers cannot be
    read window by window (`decoding_window_length()` is None, such as
    `kind="local"`, which has no cache to carry) re-reads the whole current
    segment instead, which is exact too.

    Complete segments of a prompt are read in one call each (the forward
    pass of training); the tokens after them go through the window steps.

    All rows share one position: rows are texts of the same length in the
    decoder's view (prompts of different lengths are aligned by the
    caller, which forces the longer prompts' tokens in).

    Args:
        model: a built functional (`stateful=False`) `SegmentLM`.
        segment_length: int. The segment length the model was trained with
            (it sets where memories are written).
        batch_size: int. Rows decoded together.
        call: the compiled forward pass to use (`compiled_model_call(model)`),
            or None to compile one. A model's `generation_model()` keeps one,
            so a second `generate` does not compile again.

    Example:
    ```python
    decoder = IncrementalDecoder(model, segment_length=128, batch_size=1)
    tokens = np.array([[1, 104, 105]], "int32")
    logits = decoder.logits_before(tokens, 3)  # of the token at position 3
    ```
    """

    def __init__(self, model, segment_length, batch_size, call=None):
        if model.stateful:
            raise ValueError("IncrementalDecoder needs a functional (stateful=False) model.")
        if not model.built:
            # A functional model's weights depend on neither the batch nor the length.
            model.build({"tokens": (None, None), "reset": (None,)})
        self.model = model
        self.segment_length = check_int("segment_length", segment_length)
        self.batch_size = check_int("batch_size", batch_size)
        window = model.decoding_window_length()
        if window is None or self.segment_length % window:
            window = self.segment_length
        self.unit_length = window
        names = model.segment_state_names() if window < self.segment_length else None
        self.held_names = names
        # Without held entries the last window's state is the segment's: no second read.
        self.reread_segments = bool(names and any(names))
        self.call = call or compiled_model_call(model)
        self.pad_id = model.pad_token_id
        self.segment_start = 0
        self.unit_start = 0
        self.segment_state = model.initial_state(batch_size)
        self.unit_state = self.segment_state
        self.last_call = None

    def logits_before(self, tokens, length):
        """Returns the float32 logits `(batch, vocab)` of the token at `length`.

        Args:
            tokens: int array `(batch, >= length)`: the texts, whose first
                `length` tokens are known; positions from `length` on are
                not read. Tokens before `length` must not change between
                calls (they are the decoder's memory).
            length: int >= 1. How many tokens are known; it never decreases.
        """
        tokens = np.asarray(tokens, dtype=np.int32)
        last = length - 1
        if last < self.unit_start:
            raise ValueError(
                f"`length` ({length}) lies before the decoder's current window "
                f"({self.unit_start}); decoders only move forward."
            )
        while last >= self.unit_start + self.unit_length:
            self._finish_unit(tokens)
        window = self._window(tokens, self.unit_start, length)
        logits, new_state = self.call(
            window, self._reset(self.unit_start), self.unit_state, np.int32(last - self.unit_start)
        )
        self.last_call = (self.unit_start, last, new_state)
        return ops.convert_to_numpy(logits)

    def prefill(self, tokens, length):
        """Reads every complete segment before position `length - 1` in one call each.

        The token at `length - 1` is left for `logits_before`, which gives
        the logits the first new token is drawn from.
        """
        tokens = np.asarray(tokens, dtype=np.int32)
        while self.segment_start + self.segment_length <= length - 1:
            self._finish_segment(tokens)

    def _window(self, tokens, start, length):
        window = np.full((self.batch_size, self.unit_length), self.pad_id, np.int32)
        known = tokens[:, start : min(length, start + self.unit_length)]
        window[:, : known.shape[1]] = known
        return window

    def _reset(self, start):
        # Rows start their documents at position 0; the initial state is the reset one.
        return np.full((self.batch_size,), start == 0)

    def _finish_unit(self, tokens):
        """Moves to the next window: its state is the finished window's, held entries kept."""
        start, end = self.unit_start, self.unit_start + self.unit_length
        if end - self.segment_start == self.segment_length and self.reread_segments:
            self._finish_segment(tokens)
            return
        if self.last_call is not None and self.last_call[:2] == (start, end - 1):
            new_state = self.last_call[2]
        else:
            window = self._window(tokens, start, end)
            _, new_state = self.call(window, self._reset(start), self.unit_state, np.int32(0))
        if self.held_names:
            new_state = [
                {
                    name: held[name] if name in names else value
                    for name, value in block_state.items()
                }
                for block_state, held, names in zip(new_state, self.segment_state, self.held_names)
            ]
        self.unit_start = end
        self.unit_state = new_state
        if end - self.segment_start == self.segment_length:
            self.segment_start, self.segment_state = end, new_state
        self.last_call = None

    def _finish_segment(self, tokens):
        """Reads the current segment from its start, as training does, and moves past it."""
        start = self.segment_start
        segment = tokens[:, start : start + self.segment_length]
        _, self.segment_state = self.call(
            segment, self._reset(start), self.segment_state, np.int32(0)
        )
        self.segment_start = self.unit_start = start + self.segment_length
        self.unit_state = self.segment_state
        self.last_call = None
