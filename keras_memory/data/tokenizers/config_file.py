"""The on-disk record of a saved tokenizer: `tokenizer.json` beside its files.

Every tokenizer's `save(directory)` writes its own files (a SentencePiece
model, a BPE vocabulary and merges, a keras-hub preset, or none for bytes)
and then `tokenizer.json`:

```json
{
  "format_version": 1,
  "kind": "bpe",
  "vocab_size": 800,
  "pad_id": 0,
  "bos_id": 1,
  "eos_id": 2,
  "files": {"vocabulary": "tokenizer_bpe_vocabulary.json", "merges": "..."}
}
```

`load_tokenizer` (in `storage`) reads it back with `read_config`. This
module knows no tokenizer class, so every tokenizer module can import it.
"""

import json
import os

CONFIG_FILENAME = "tokenizer.json"
FORMAT_VERSION = 1
TOKENIZER_KINDS = ("bytes", "sentencepiece", "bpe", "hub")


def check_directory(directory):
    """Returns `directory` if it is a path (str or `os.PathLike`), else raises TypeError."""
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(
            f"`directory` must be a path (str or os.PathLike); got {type(directory).__name__}."
        )
    return directory


def write_config(directory, tokenizer, files):
    """Writes `tokenizer.json` for `tokenizer` into the existing `directory`.

    Args:
        directory: str or `os.PathLike`. The folder the tokenizer was saved to.
        tokenizer: the tokenizer; its `kind`, `vocab_size` and `special_ids`
            are recorded.
        files: dict of role -> file name (relative to `directory`) of the
            tokenizer's own files, e.g. `{"proto": "tokenizer.model"}`.
    """
    special_ids = tokenizer.special_ids
    config = {
        "format_version": FORMAT_VERSION,
        "kind": tokenizer.kind,
        "vocab_size": int(tokenizer.vocab_size),
        "pad_id": int(special_ids["pad_id"]),
        "bos_id": int(special_ids["bos_id"]),
        "eos_id": int(special_ids["eos_id"]),
        "files": files,
    }
    with open(os.path.join(directory, CONFIG_FILENAME), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
        f.write("\n")


def read_config(directory):
    """Reads `tokenizer.json` from `directory`.

    Args:
        directory: str or `os.PathLike`.

    Returns:
        `(path, config)`: the path of the file and its JSON object as a dict.

    Raises:
        TypeError: `directory` is not a path.
        FileNotFoundError: `directory` has no `tokenizer.json`.
        ValueError: the file is not a JSON object.
    """
    path = os.path.join(check_directory(directory), CONFIG_FILENAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"`directory` {directory!r} holds no {CONFIG_FILENAME}.")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(
            f"`directory` {directory!r}: {CONFIG_FILENAME} is not valid JSON ({error})."
        ) from error
    if not isinstance(config, dict):
        raise ValueError(
            f"`directory` {directory!r}: {CONFIG_FILENAME} must hold a JSON object; got "
            f"{type(config).__name__}."
        )
    return path, config
