"""Saving and restoring any tokenizer of `keras_memory.data` (`tokenizer.json`).

A training workdir holds the tokenizer (`save_tokenizer`, or
`make_tokenizer(..., directory=workdir)`) and `load_tokenizer(workdir)`
gives it back for evaluation and generation. The file format is in
`config_file`.
"""

from keras_memory.data.tokenizers.byte_pair import BytePairTokenizer
from keras_memory.data.tokenizers.byte_tokenizer import ByteTokenizer
from keras_memory.data.tokenizers.config_file import (
    CONFIG_FILENAME,
    TOKENIZER_KINDS,
    read_config,
)
from keras_memory.data.tokenizers.hub import HubTokenizer
from keras_memory.data.tokenizers.sentencepiece import SentencePieceTokenizer

# The kinds whose files `tokenizer.json` names; each class has `from_files`.
_CLASSES_WITH_FILES = {
    "sentencepiece": SentencePieceTokenizer,
    "bpe": BytePairTokenizer,
    "hub": HubTokenizer,
}


def save_tokenizer(tokenizer, directory):
    """Saves any tokenizer of `keras_memory.data` to `directory`.

    Args:
        tokenizer: a `ByteTokenizer`, `SentencePieceTokenizer`,
            `BytePairTokenizer` or `HubTokenizer`.
        directory: str. Folder to write `tokenizer.json` and the
            tokenizer's files into (created if missing).

    Example:
    ```python
    save_tokenizer(ByteTokenizer(), "workdir")
    tokenizer = load_tokenizer("workdir")
    ```
    """
    if hasattr(tokenizer, "save"):
        tokenizer.save(directory)
    else:
        raise ValueError(
            f"`tokenizer` must be a tokenizer of keras_memory.data; got {type(tokenizer).__name__}."
        )


def load_tokenizer(directory):
    """Restores the tokenizer saved in `directory` by `save` or `make_tokenizer`.

    Args:
        directory: str. Folder holding `tokenizer.json` and its files.

    Returns:
        A `ByteTokenizer`, `SentencePieceTokenizer`, `BytePairTokenizer` or
        `HubTokenizer` whose encodings equal the saved one's.

    Raises:
        FileNotFoundError: `directory` has no `tokenizer.json`.
        ValueError: the file names an unknown kind, or the restored
            vocabulary size differs from the recorded one.

    Example:
    ```python
    make_tokenizer("bytes", directory="workdir")
    tokenizer = load_tokenizer("workdir")
    ```
    """
    path, config = read_config(directory)
    kind = config.get("kind")
    if kind in _CLASSES_WITH_FILES and not isinstance(config.get("files"), dict):
        raise ValueError(
            f"`directory` {directory!r}: {CONFIG_FILENAME} of a {kind!r} tokenizer needs a "
            f"'files' object naming its files; got {config.get('files')!r}."
        )
    if kind == "bytes":
        tokenizer = ByteTokenizer()
    elif kind in _CLASSES_WITH_FILES:
        tokenizer = _CLASSES_WITH_FILES[kind].from_files(directory, config["files"])
    else:
        raise ValueError(
            f"`directory` {directory!r}: {path} names tokenizer kind {kind!r}; expected one of "
            f"{', '.join(TOKENIZER_KINDS)}."
        )
    if config.get("vocab_size", tokenizer.vocab_size) != tokenizer.vocab_size:
        raise ValueError(
            f"{path} records vocab_size={config['vocab_size']} but its files give "
            f"{tokenizer.vocab_size}."
        )
    return tokenizer
