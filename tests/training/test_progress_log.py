"""ProgressLog prints the recent loss in bits/token, the speed and the ETA."""

import io
import math
import re

import keras
import numpy as np
import pytest

from keras_memory.training import ProgressLog
from keras_memory.training.progress_log import _duration
from tests.training.test_checkpoints import segment_stream, small_model

LINE = re.compile(
    r"^step (\d+)/(\d+)  loss (-?[\d.]+|nan) bits/token  ([\d,]+|\?) tokens/s  "
    r"ETA (\d+s|\d+m\d\ds|\d+h\d\dm|\?)$"
)


class _BatchLosses(keras.callbacks.Callback):
    """Each batch's own loss, recovered from Keras's running mean."""

    def __init__(self):
        super().__init__()
        self.losses, self._mean = [], 0.0

    def on_train_batch_end(self, batch, logs=None):
        mean = float(logs["loss"])
        self.losses.append(mean * (batch + 1) - self._mean * batch)
        self._mean = mean


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def fit_with(log, steps=5):
    losses = _BatchLosses()
    small_model().fit(
        segment_stream(), epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[losses, log]
    )
    return losses.losses


def test_a_line_every_few_steps_and_at_the_end_with_the_mean_loss_in_bits():
    stream = io.StringIO()
    losses = fit_with(ProgressLog(total_steps=8, tokens_per_step=256, every=2, stream=stream))
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()  # not a terminal: whole lines
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert [(int(m[1]), int(m[2])) for m in parsed] == [(2, 8), (4, 8), (5, 8)]
    expected = [np.mean(losses[0:2]), np.mean(losses[2:4]), losses[4]]
    for match, nats in zip(parsed, expected, strict=True):
        assert float(match[3]) == pytest.approx(nats / math.log(2), abs=5e-4)


def test_steps_count_from_first_step_after_a_resume():
    stream = io.StringIO()
    fit_with(ProgressLog(10, 256, first_step=3, every=2, stream=stream), steps=3)
    steps = [int(LINE.match(line)[1]) for line in stream.getvalue().splitlines()]
    assert steps == [4, 6]


def test_a_terminal_line_is_overwritten_and_ends_with_a_newline():
    stream = _Terminal()
    fit_with(ProgressLog(total_steps=5, tokens_per_step=256, every=2, stream=stream))
    text = stream.getvalue()
    assert text.startswith("\r") and text.endswith("\n") and text.count("\n") == 1
    shown = [line.rstrip() for line in text.rstrip("\n").split("\r")[1:]]
    assert [int(LINE.match(line)[1]) for line in shown] == [2, 4, 5]


def test_stream_defaults_to_stdout_at_print_time(capsys):
    log = ProgressLog(total_steps=2, tokens_per_step=256, every=1)
    fit_with(log, steps=2)
    lines = capsys.readouterr().out.splitlines()
    assert [int(LINE.match(line)[1]) for line in lines] == [1, 2]


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"total_steps": 0}, "total_steps"),
        ({"tokens_per_step": 2.5}, "tokens_per_step"),
        ({"first_step": -1}, "first_step"),
        ({"every": True}, "every"),
    ],
)
def test_bad_arguments_are_refused(kwargs, name):
    arguments = {"total_steps": 10, "tokens_per_step": 256, **kwargs}
    with pytest.raises(ValueError, match=f"`{name}`"):
        ProgressLog(**arguments)


def test_durations_read_like_a_clock():
    assert [_duration(s) for s in (0, 44.6, 192, 7500)] == ["0s", "45s", "3m12s", "2h05m"]
