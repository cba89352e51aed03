"""`Interrupted`: Ctrl-C during a command, with what was kept and how to continue."""

import signal
import threading


class Interrupted(Exception):
    """Ctrl-C: the message says what was kept and how to continue (exit code 130)."""


class StopOnInterrupt:
    """Ctrl-C during `model.fit` ends training after the step under way.

    A `KeyboardInterrupt` raised in the middle of a training step can land
    in library code that catches it: under load, a test saw training go on
    for five minutes after Ctrl-C. Inside this context Ctrl-C only sets
    `interrupted`; `callback()`, last in the fit's callbacks, stops training
    at the end of the batch, after the checkpoint and progress callbacks ran.
    A second Ctrl-C raises `KeyboardInterrupt` at once.
    """

    def __init__(self):
        self.interrupted = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc_info):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False

    def _handle(self, signum, frame):
        if self.interrupted:
            raise KeyboardInterrupt
        self.interrupted = True

    def callback(self):
        """A Keras callback that ends `fit` at the batch end once interrupted."""
        import keras

        stopper = self

        class StopWhenInterrupted(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if stopper.interrupted:
                    self.model.stop_training = True

        return StopWhenInterrupted()
