"""Block-Recurrent feedback: running a whole stack window by window.

Layers built with `read_recurrent_state=True` read the state that the
recurrent layer (possibly above them) wrote after the previous window, so
such a stack cannot run layer by layer over the whole segment: every block
reads window 1, then every block reads window 2, and so on (meliad's
feedback). `feedback_runner` is the `stack_runner` of the `block_recurrent`
kind: `MemoryLM` runs its blocks with it when any block reads the state.
"""

from keras import ops

from keras_memory.memories.block_recurrent.block_recurrent_attention import (
    BlockRecurrentAttention,
)


def feedback_runner(blocks):
    """A `FeedbackStack` for `blocks` if any of them reads a recurrent state, else None.

    Raises:
        ValueError: blocks read a recurrent state that no block writes.
    """
    attentions = [getattr(block, "attention", None) for block in blocks]
    readers = tuple(
        i for i, a in enumerate(attentions) if getattr(a, "read_recurrent_state", False)
    )
    writers = [i for i, a in enumerate(attentions) if isinstance(a, BlockRecurrentAttention)]
    if readers and not writers:
        raise ValueError(
            f"Blocks {list(readers)} read a recurrent state (`read_recurrent_state=True`) "
            "but no block has a BlockRecurrentAttention layer to write it."
        )
    if not readers:
        return None
    # The last recurrent layer is the one the others read.
    return FeedbackStack(writers[-1], readers, attentions[writers[-1]].window_length)


class FeedbackStack:
    """Runs the whole stack on one window after the other.

    States flow from window to window with their gradients, as inside one
    layer; what leaves the segment is cut from the graph, as always.

    Args:
        writer: int. Index of the block whose recurrent state others read.
        readers: tuple of int. Indices of the blocks that read it.
        window_length: int. The writer's window.
    """

    def __init__(self, writer, readers, window_length):
        self.writer = writer
        self.readers = readers
        self.window_length = window_length

    def block_input_length(self, length):
        """Each block reads one window at a time."""
        if length is not None and length % self.window_length:
            raise ValueError(
                f"The segment length of `tokens` ({length}) must be a multiple of the "
                f"recurrent layer's `window_length` ({self.window_length})."
            )
        return None if length is None else self.window_length

    def __call__(self, blocks, x, state, reset, training, stateful):
        """Returns `(hidden, new_state)`, the state a list of per-block states."""
        w = self.window_length
        self.block_input_length(x.shape[1])
        length = x.shape[1]
        if length is None:
            raise ValueError("A stack with Block-Recurrent feedback needs a static segment length.")
        writer = blocks[self.writer].attention
        batch = ops.shape(x)[0]
        if reset is None:  # no row starts a document
            reset = ops.zeros((batch,), "bool")
        if stateful:
            states = [block.read_state() for block in blocks]
        elif state is None:
            states = [block.initial_state(batch) for block in blocks]
        else:
            states = list(state)
        no_reset = ops.zeros_like(reset)
        outputs = []
        for k in range(length // w):
            h = x[:, k * w : (k + 1) * w]
            window_reset = reset if k == 0 else no_reset
            # State and memory dropout are drawn once per segment, for its first window.
            forget = writer.forget_masks(reset, training) if k == 0 else (no_reset, no_reset)
            recurrent_kv = writer.recurrent_keys_values(states[self.writer], forget[0])
            for i, block in enumerate(blocks):
                options = {}
                if i in self.readers:
                    options["recurrent_kv"] = recurrent_kv
                if i == self.writer or (
                    k > 0 and isinstance(block.attention, BlockRecurrentAttention)
                ):
                    options["forget"] = forget
                h, states[i] = block(
                    h,
                    state=states[i],
                    reset=window_reset,
                    training=training,
                    functional=True,
                    **options,
                )
            outputs.append(h)
        new_state = [
            {name: ops.stop_gradient(value) for name, value in block_state.items()}
            for block_state in states
        ]
        if stateful:
            for block, block_state in zip(blocks, new_state):
                block.write_state(block_state)
        return ops.concatenate(outputs, axis=1), new_state
