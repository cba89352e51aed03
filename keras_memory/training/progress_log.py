"""A short progress line for `model.fit`: step, loss in bits/token, speed, ETA.

Keras's own progress bar shows a running mean of the loss over the epoch in
nats and no throughput; a training run wants the recent loss in bits per
token, tokens per second and the time left, in one line that a terminal
overwrites and a log file keeps.
"""

import math
import sys
import time

import keras

from keras_memory.ops.checks import check_int


class ProgressLog(keras.callbacks.Callback):
    """Prints `step 120/1000  loss 2.310 bits/token  1,234 tokens/s  ETA 3m12s`.

    A line is printed every `every` global steps and after the last step.
    Its loss is the mean of the steps since the line before (Keras's running
    mean over the epoch undone), converted from nats to bits; tokens/s and
    the ETA come from the wall time since the line before. On a terminal
    each line overwrites the last (`\\r`) and training ends with a newline;
    elsewhere (a log file, a job scheduler) every line is kept whole.

    Args:
        total_steps: int. The global step training ends at.
        tokens_per_step: int. Tokens in one batch (batch size x segment length).
        first_step: int. Global step before the first batch of this `fit`
            (the checkpoint a run resumes from). Defaults to 0.
        every: int. Steps between lines. Defaults to 10.
        stream: a text stream, or None for `sys.stdout` as it is when a line
            is printed (so pytest's or a caller's redirection applies).

    Raises:
        ValueError: an argument is not an int in range.

    Example:
    ```python
    model.fit(
        stream,
        epochs=1,
        verbose=0,
        callbacks=[ProgressLog(total_steps=1000, tokens_per_step=8 * 512)],
    )
    ```
    """

    def __init__(self, total_steps, tokens_per_step, first_step=0, every=10, stream=None):
        super().__init__()
        self.total_steps = check_int("total_steps", total_steps)
        self.tokens_per_step = check_int("tokens_per_step", tokens_per_step)
        self.first_step = check_int("first_step", first_step, minimum=0)
        self.every = check_int("every", every)
        self.stream = stream
        self._reset()

    def _reset(self):
        self.step = self.first_step
        self._previous_mean = 0.0
        self._loss_sum = 0.0
        self._loss_count = 0
        self._line_start = time.perf_counter()
        self._open_width = 0  # characters of an unfinished terminal line

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_begin(self, epoch, logs=None):
        self._previous_mean = 0.0

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        # Keras logs the running mean over the epoch (equal batch weights);
        # undo it to get this batch's own loss, as `CheckpointEvery` does.
        mean = float(logs["loss"])
        self._loss_sum += mean * (batch + 1) - self._previous_mean * batch
        self._loss_count += 1
        self._previous_mean = mean
        if self.step % self.every == 0:
            self._print_line()

    def on_train_end(self, logs=None):
        if self._loss_count:
            self._print_line()
        if self._open_width:
            self._stream().write("\n")
            self._stream().flush()
            self._open_width = 0

    def _stream(self):
        return self.stream if self.stream is not None else sys.stdout

    def _print_line(self):
        now = time.perf_counter()
        # The first interval includes tracing and compilation, so its speed
        # is low and its ETA long; later lines measure steady training.
        elapsed = now - self._line_start
        bits = self._loss_sum / self._loss_count / math.log(2)
        if elapsed > 0:
            speed = f"{self.tokens_per_step * self._loss_count / elapsed:,.0f}"
            left = (self.total_steps - self.step) * elapsed / self._loss_count
            eta = _duration(max(left, 0.0))
        else:
            speed, eta = "?", "?"
        line = (
            f"step {self.step}/{self.total_steps}  loss {bits:.3f} bits/token  "
            f"{speed} tokens/s  ETA {eta}"
        )
        stream = self._stream()
        if getattr(stream, "isatty", lambda: False)():
            # Pad with spaces: a shorter line must hide the end of the longer one.
            stream.write("\r" + line.ljust(self._open_width))
            self._open_width = len(line)
        else:
            stream.write(line + "\n")
        stream.flush()
        self._loss_sum, self._loss_count, self._line_start = 0.0, 0, now


def _duration(seconds):
    """`"45s"`, `"3m12s"` or `"2h05m"`."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
