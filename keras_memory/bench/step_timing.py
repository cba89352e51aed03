"""The median time of a training step, measured the same way by every speed benchmark."""

import statistics
import time

from keras_memory.backend.device import wait_for_variables


def median_step_time(model, batches, warmup, steps):
    """Trains `model` for `warmup + steps` batches; the median time of the last `steps`.

    Each step is timed until its loss is on the host and every variable's
    update has finished on the device (`wait_for_variables`), so an
    asynchronous backend is not credited with work it has not done.

    Args:
        model: a compiled `keras.Model`.
        batches: list of `(inputs, targets)`; the last one repeats when the
            list is shorter than the run.
        warmup: int. Untimed steps first (compilation).
        steps: int. Timed steps.

    Returns:
        `(seconds, loss)`: the median step time and the last step's loss.
    """
    times = []
    for i in range(warmup + steps):
        inputs, targets = batches[min(i, len(batches) - 1)]
        start = time.perf_counter()
        loss = model.train_on_batch(inputs, targets)  # a Python float: waits for the loss
        wait_for_variables(model)  # and for the variables' updates
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times), loss
