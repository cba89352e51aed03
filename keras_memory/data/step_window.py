"""A window of global steps over a `SegmentStream`, for resumable training."""

import keras
import numpy as np

from keras_memory.ops.checks import check_int


class StepWindow(keras.utils.PyDataset):
    """Yields global steps `[first_step, first_step + num_steps)` of `stream`.

    Global step `g` is step `g % len(stream)` of epoch `g // len(stream)`
    (laid out with `stream.set_epoch`), so a run resumed at step `g` reads
    exactly the batches an uninterrupted run would have read.

    Args:
        stream: a `SegmentStream`.
        first_step: int. Global step of the first batch.
        num_steps: int. Number of batches.
    """

    def __init__(self, stream, first_step, num_steps):
        super().__init__()
        if not all(hasattr(stream, name) for name in ("set_epoch", "epoch", "__len__")):
            raise ValueError(
                f"`stream` must be a SegmentStream (with `set_epoch`); got {type(stream).__name__}."
            )
        first_step = check_int("first_step", first_step, minimum=0)
        num_steps = check_int("num_steps", num_steps)
        self.stream = stream
        self.first_step = first_step
        self.num_steps = num_steps

    def __len__(self):
        return self.num_steps

    def __getitem__(self, index):
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
            raise TypeError(f"`index` must be an int; got {index!r}.")
        if not 0 <= index < self.num_steps:
            raise IndexError(f"Index {index} is outside [0, {self.num_steps}).")
        epoch, step = divmod(self.first_step + index, len(self.stream))
        if epoch != self.stream.epoch:
            self.stream.set_epoch(epoch)
        return self.stream[step]
