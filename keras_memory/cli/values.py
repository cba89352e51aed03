"""Value parsers of the command line's flags: numbers in range, memory sizes, tokenizers.

Each raises `argparse.ArgumentTypeError` with what it expects and what it
got; argparse then prints `keras-memory train: error: argument
--segment-length: expected an int >= 1; got '0'` and exits with code 2, before
anything is read or written.
"""

import argparse
import math


def _number(text, kind, minimum=None, above=None, maximum=None):
    """`text` as `kind` (int or float) within the bounds, or ArgumentTypeError."""
    bounds = []
    if minimum is not None:
        bounds.append(f">= {minimum}")
    if above is not None:
        bounds.append(f"> {above}")
    if maximum is not None:
        bounds.append(f"<= {maximum}")
    expected = f"expected {'an int' if kind is int else 'a number'}" + (
        f" {' and '.join(bounds)}" if bounds else ""
    )
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{expected}; got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{expected} (finite); got {text!r}")
    if (
        (minimum is not None and value < minimum)
        or (above is not None and value <= above)
        or (maximum is not None and value > maximum)
    ):
        raise argparse.ArgumentTypeError(f"{expected}; got {text!r}")
    return value


def int_at_least(minimum):
    """An argparse `type`: an int >= `minimum`."""
    return lambda text: _number(text, int, minimum=minimum)


def float_within(minimum=None, maximum=None):
    """An argparse `type`: a finite number in `[minimum, maximum]` (None: unbounded)."""
    return lambda text: _number(text, float, minimum=minimum, maximum=maximum)


def positive_int(text):
    """An int >= 1 (steps, sizes, counts)."""
    return _number(text, int, minimum=1)


def non_negative_int(text):
    """An int >= 0 (where 0 means none or off, as the flag's help says)."""
    return _number(text, int, minimum=0)


def positive_float(text):
    """A finite number > 0 (a learning rate, a RoPE base)."""
    return _number(text, float, above=0)


def non_negative_float(text):
    """A finite number >= 0 (a temperature, a margin)."""
    return _number(text, float, minimum=0)


def probability_mass(text):
    """A number in (0, 1] (nucleus sampling's probability mass)."""
    return _number(text, float, above=0, maximum=1)


def comma_separated_ints(text):
    """Comma-separated ints >= 1, e.g. `64,256,1024`; the text itself is kept."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated ints >= 1 such as 64,256,1024; got {text!r}"
        )
    return text


def memory_size(text):
    """A memory size >= 1: an int, or a name of `MEMORY_SIZES` such as `64k`."""
    from keras_memory.models.presets import MEMORY_SIZES

    if text in MEMORY_SIZES:
        return MEMORY_SIZES[text]
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"expected an int >= 1 or one of {', '.join(MEMORY_SIZES)}; got {text!r}"
        )
    return value


def tokenizer_name(text):
    """A `--tokenizer`: `bytes`, `sentencepiece`, `bpe` or `hub:PRESET`."""
    if text in ("bytes", "sentencepiece", "bpe") or (text.startswith("hub:") and text[4:]):
        return text
    raise argparse.ArgumentTypeError(
        f"expected bytes, sentencepiece, bpe or hub:PRESET; got {text!r}"
    )
