"""How a model made of memory blocks decodes: by windows, or one token at a time."""

import math

from keras import ops

from keras_memory.memories.stack import LayerByLayer


class BlockDecoding:
    """What `IncrementalDecoder` asks of a model whose `blocks` are `MemoryLayer`s.

    A mixin of `MemoryLM` (and so `MelodiLM`): it reads the blocks'
    decoding promises (`MemoryLayer.decoding_window_length`,
    `segment_state_names`, `step_buffers`) and runs one token through the
    stack (`decode_step`). The class needs `blocks`, `stack_runner`,
    `embed`, `final_norm` and `tied_logits`.
    """

    def decoding_window_length(self):
        """Tokens a generation step re-reads: a window all blocks decode by, or None (a segment).

        The least common multiple of the blocks' `decoding_window_length`;
        None when any block needs whole segments (see
        `MemoryLayer.decoding_window_length`).
        """
        lengths = [block.decoding_window_length() for block in self.blocks]
        return None if None in lengths else math.lcm(*lengths)

    def segment_state_names(self):
        """Per block, the state entries written once per segment (see `MemoryLayer`)."""
        return [tuple(block.segment_state_names()) for block in self.blocks]

    def step_buffers(self, state, batch_size, segment_length):
        """Per block, the buffers of a one-token decoding step; None if a block has none.

        Only a stack run layer by layer decodes a token at a time (feedback
        runs window by window). See `MemoryLayer.step_buffers`.
        """
        if not isinstance(self.stack_runner, LayerByLayer):
            return None
        buffers = [
            block.step_buffers(block_state, batch_size, segment_length)
            for block, block_state in zip(self.blocks, state)
        ]
        return None if any(b is None for b in buffers) else buffers

    def decode_step(self, tokens, position, buffers, state, previous_valid):
        """The float32 logits `(batch, vocab)` of one token per row, and the new buffers.

        Args:
            tokens: int `(batch, 1)`: each row's token at `position` of the window.
            position: int32 scalar tensor.
            buffers: `step_buffers`' list.
            state: the per-block states at the segment's start.
            previous_valid: `(previous_in_document, previous_in_segment)` bool scalars.
        """
        x = self.embed(tokens)
        new_buffers = []
        for block, block_buffers, block_state in zip(self.blocks, buffers, state):
            x, block_buffers = block.decode_step(
                x, position, block_buffers, block_state, previous_valid
            )
            new_buffers.append(block_buffers)
        logits = self.tied_logits(self.final_norm(x))
        return ops.cast(logits[:, 0], "float32"), new_buffers

    def next_window_buffers(self, buffers, state, previous_valid):
        """Per block, the step buffers of the next window (`MemoryLayer.next_window_buffers`)."""
        return [
            block.next_window_buffers(block_buffers, block_state, previous_valid)
            for block, block_buffers, block_state in zip(self.blocks, buffers, state)
        ]
