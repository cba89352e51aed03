"""Melodi language model: MemoryLM with summary tokens flowing up the stack."""

import keras
from keras import ops

from keras_memory.memories.melodi.melodi_layer import MelodiLayer
from keras_memory.models.memory_lm import MemoryLM


@keras.saving.register_keras_serializable(package="keras_memory")
class MelodiLM(MemoryLM):
    """A `MemoryLM` whose blocks are `MelodiLayer`s.

    Each window of `W` tokens gets `U` summary tokens, learned embeddings
    `(U, hidden_dim)` drawn from a truncated N(0, 0.25) as in meliad, the
    same for every window. The stack passes context and summary tokens
    together (packed: the segment's context tokens, then its summary
    tokens), each layer's token mixing producing the next layer's summary;
    the logits are read from the context tokens only. Memory lives in the
    layers: every layer's short-term memory and the long-term layer's FIFO.

    Args:
        vocab_size: int. Vocabulary size.
        hidden_dim: int. Model width.
        blocks: list of `MelodiLayer` with one `window_length` and
            `summary_size` (e.g. `make_blocks("melodi", ...)`).
        **kwargs: see `MemoryLM`.

    Example:
    ```python
    model = keras_memory.models.MemoryLM.from_preset("tiny", kind="melodi")
    tokens = np.random.randint(3, 259, size=(2, 128))
    logits, state = model({"tokens": tokens, "reset": np.array([True, True])})
    ```

    References:
        - [Chen et al., 2024 (Melodi)](https://arxiv.org/abs/2410.03156)
        - [meliad, memory2/melodi_layer.py (MelodiStack)](https://github.com/google-research/meliad)
    """

    def __init__(self, vocab_size, hidden_dim, blocks, **kwargs):
        super().__init__(vocab_size, hidden_dim, blocks, **kwargs)
        if not all(isinstance(b, MelodiLayer) for b in self.blocks):
            raise ValueError("`blocks` of a MelodiLM must all be MelodiLayer.")
        shapes = {(b.window_length, b.summary_size) for b in self.blocks}
        if len(shapes) != 1:
            raise ValueError(
                "Every MelodiLayer of a MelodiLM needs the same `window_length` and "
                f"`summary_size`; got (window_length, summary_size) = {sorted(shapes)}."
            )
        self.window_length, self.summary_size = shapes.pop()

    def build(self, input_shape):
        token_shape = input_shape["tokens"] if isinstance(input_shape, dict) else input_shape
        batch, length = token_shape[0], token_shape[1]
        self.summary_embeddings = self.add_weight(
            name="summary_embeddings",
            shape=(self.summary_size, self.hidden_dim),
            initializer=keras.initializers.TruncatedNormal(stddev=0.25),
        )
        self.build_embedding(token_shape)
        for block in self.blocks:
            if not block.built:
                block.build(self.block_input_shape(block, batch, length))
        self.final_norm.build((batch, length, self.hidden_dim))
        self.built = True

    def num_windows(self, length):
        """Windows in a segment of `length` tokens (None for an unknown length).

        Raises:
            ValueError: `length` is not a multiple of `window_length`.
        """
        if length is not None and length % self.window_length:
            raise ValueError(
                f"The segment length of `tokens` ({length}) must be a multiple of `window_length` "
                f"({self.window_length})."
            )
        return None if length is None else length // self.window_length

    def block_input_shape(self, block, batch, length):
        # Each window's tokens, then its summary tokens, packed along the sequence.
        windows = self.num_windows(length)
        packed = None if windows is None else windows * (self.window_length + self.summary_size)
        return (batch, packed, self.hidden_dim)

    def call_stack(self, x, state, reset, training):
        length = x.shape[1]
        windows = self.num_windows(length)
        if windows is None:
            raise ValueError("A MelodiLM needs a static segment length.")
        summary = ops.cast(self.summary_embeddings, x.dtype)
        summary = ops.tile(summary[None], (ops.shape(x)[0], windows, 1))
        packed, new_state = self.stack_runner(
            self.blocks,
            ops.concatenate([x, summary], axis=1),
            state,
            reset,
            training,
            self.stateful,
        )
        return packed[:, :length], new_state
