"""Exact token-by-token decoding of a segment-reading model, one window per token."""

import numpy as np
from keras import ops

from keras_memory.backend.compiled_call import compiled_model_call, compiled_model_method
from keras_memory.layers.memory_layer import memory_layers
from keras_memory.ops.checks import check_int


class IncrementalDecoder:
    """Gives the logits of each next token of a batch of growing texts, as training computes them.

    A model trained on segments of `S` tokens computes, for every token,
    what a forward pass over its document segment by segment computes. The
    decoder gets the same numbers at a cost per token that does not grow
    with `S`, in one of two modes:

    - `"token"`: every block has a one-token step (`step_buffers`: the
      sliding-window, XL, kNN, dense-KV and Block-Recurrent layers, so the
      kinds `local`, `xl`, `memorizing`, `memorizing_dense` and
      `block_recurrent` without feedback). Each layer keeps the keys and
      values of the previous and the current window (dense-KV: of the
      segment so far; Block-Recurrent also its state, updated when a window
      completes); a token costs one token's projections and feed-forward
      and an attention over those keys (plus its kNN search).
    - `"window"`: the window that holds the newest token is re-read,
      padded (padding follows every real token, so causal attention keeps
      the real tokens' logits exact), from the state at its start; when it
      is complete its state is kept. Melodi decodes this way (its summary
      tokens read a whole window), and so does a Block-Recurrent stack with
      feedback (run window by window). A model whose layers cannot be read
      window by window (`decoding_window_length()` None: `RetrofitLM`,
      rotary positions next to registers) re-reads the whole segment.

    In both, entries that a layer writes once per segment (a kNN memory, a
    compressed memory) are held at their segment-start values within a
    segment, and the completed segment is read once more from its start to
    write them, as training does. Complete segments of a prompt are read in
    one call each (the forward pass of training).

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
        steps: `(decode_step, next_window_buffers)` of the model compiled
            (`compiled_model_method`), or None to compile them (used in
            `"token"` mode only).

    Example:
    ```python
    decoder = IncrementalDecoder(model, segment_length=128, batch_size=1)
    tokens = np.array([[1, 104, 105]], "int32")
    logits = decoder.logits_before(tokens, 3)  # of the token at position 3
    ```

    References:
        - [Dai et al., 2019](https://arxiv.org/abs/1901.02860) (decoding
          against a cache of the previous segment's keys and values)
    """

    def __init__(self, model, segment_length, batch_size, call=None, steps=None):
        if model.stateful:
            raise ValueError("IncrementalDecoder needs a functional (stateful=False) model.")
        if not model.built:
            # A functional model's weights depend on neither the batch nor the length.
            model.build({"tokens": (None, None), "reset": (None,)})
        self.model = model
        self.segment_length = check_int("segment_length", segment_length)
        self.batch_size = check_int("batch_size", batch_size)
        self.call = call or compiled_model_call(model, supports_xla(model))
        self.pad_id = model.pad_token_id
        self.segment_start = 0
        self.segment_state = model.initial_state(batch_size)
        names = model.segment_state_names()
        self.segment_names = names if names and any(names) else None
        # One token at a time where every block has a step (`step_buffers`).
        buffers = model.step_buffers(self.segment_state, batch_size, self.segment_length)
        self.step_window = _step_window(buffers)
        if self.step_window is not None and self.segment_length % self.step_window == 0:
            self.mode = "token"
            self.step, self.next_window = steps or (
                compiled_model_method(model, "decode_step", supports_xla(model), 2),
                compiled_model_method(model, "next_window_buffers", supports_xla(model), 0),
            )
            self.buffers = None
            self.next_position = 0
            self.window_start = 0
            return
        # Else window by window: the window that holds the newest token is re-read.
        self.mode = "window"
        window = model.decoding_window_length()
        if window is None or self.segment_length % window:
            window = self.segment_length
        self.unit_length = window
        self.held_names = self.segment_names if window < self.segment_length else None
        # Without held entries the last window's state is the segment's: no second read.
        self.reread_segments = self.held_names is not None
        self.unit_start = 0
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
        if self.mode == "token":
            return self._step_to(tokens, last)
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
        if self.mode == "token" and self.buffers is not None:
            raise ValueError("`prefill` comes before the first `logits_before`.")
        while self.segment_start + self.segment_length <= length - 1:
            self._finish_segment(tokens)

    def _step_to(self, tokens, last):
        """Steps one token at a time up to `last`; returns the logits of the token after it."""
        if self.buffers is None:
            # The previous window of the first step is the cache the prefill left.
            self.buffers = self.model.step_buffers(
                self.segment_state, self.batch_size, self.segment_length
            )
            self.next_position = self.window_start = self.segment_start
            self.previous_valid = None
        if last < self.next_position:
            raise ValueError(
                f"`length` ({last + 1}) lies before the decoder's position "
                f"({self.next_position}); decoders only move forward."
            )
        previous_valid = self.previous_valid
        for position in range(self.next_position, last + 1):
            if position == self.segment_start + self.segment_length:
                if self.segment_names:
                    # Memories written once per segment get it now, as in training.
                    self._finish_segment(tokens)
                self.segment_start = position
            if position == self.window_start + self.step_window:
                # The finished window's flags: its state update reads its previous window.
                self.buffers = self.next_window(self.buffers, self.segment_state, previous_valid)
                self.window_start = position
            previous_valid = (
                np.bool_(self.window_start > 0),
                np.bool_(self.window_start > self.segment_start),
            )
            logits, self.buffers = self.step(
                tokens[:, position : position + 1],
                np.int32(position - self.window_start),
                self.buffers,
                self.segment_state,
                previous_valid,
            )
        self.next_position, self.previous_valid = last + 1, previous_valid
        return ops.convert_to_numpy(logits)

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
        self.segment_start = start + self.segment_length
        if self.mode == "window":
            self.unit_start = self.segment_start
            self.unit_state = self.segment_state
            self.last_call = None


def _step_window(buffers):
    """`W` of step buffers (`[previous window, current window]`), or None without steps."""
    if buffers is None:
        return None
    # Blocks without a window of their own (dense-KV) have no "keys" buffer.
    halves = {block["keys"].shape[1] // 2 for block in buffers if "keys" in block}
    return halves.pop() if len(halves) == 1 else None


def supports_xla(model_or_layer):
    """Whether XLA can compile every memory layer of a model (`supports_jit`, as Keras reads it).

    A layer that calls the host from its step (a ScaNN search through
    `tf.numpy_function`) sets `supports_jit = False`; compiled calls made for
    such a model (generation's steps) run without XLA on TensorFlow.
    """
    return all(layer.supports_jit for layer in memory_layers(model_or_layer))
