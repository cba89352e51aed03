"""Value parsers of the command line's flags: memory sizes and tokenizer names."""

import argparse


def memory_size(text):
    """A memory size: an int, or a name of `MEMORY_SIZES` such as `64k`."""
    from keras_memory.models.presets import MEMORY_SIZES

    if text in MEMORY_SIZES:
        return MEMORY_SIZES[text]
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an int or one of {sorted(MEMORY_SIZES)}; got {text!r}"
        ) from None


def tokenizer_name(text):
    """A `--tokenizer`: `bytes`, `sentencepiece`, `bpe` or `hub:PRESET`."""
    if text in ("bytes", "sentencepiece", "bpe") or (text.startswith("hub:") and text[4:]):
        return text
    raise argparse.ArgumentTypeError(
        f"expected bytes, sentencepiece, bpe or hub:PRESET; got {text!r}"
    )
