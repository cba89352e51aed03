"""`make_tokenizer`: a tokenizer by name, trained on the user's texts where it needs it."""

from keras_memory.data.tokenizers.byte_pair import train_bpe
from keras_memory.data.tokenizers.byte_tokenizer import ByteTokenizer
from keras_memory.data.tokenizers.config_file import TOKENIZER_KINDS, check_directory
from keras_memory.data.tokenizers.hub import HubTokenizer
from keras_memory.data.tokenizers.sentencepiece import train_sentencepiece


def make_tokenizer(name, texts=None, vocab_size=None, directory=None, preset=None, **train_kwargs):
    """Makes a tokenizer by name, training it on `texts` where it needs it.

    Args:
        name: str. `"bytes"` (UTF-8 bytes; `texts` and `vocab_size` are
            ignored), `"sentencepiece"` (`train_sentencepiece`) or `"bpe"`
            (`train_bpe`) or `"hub"` (`HubTokenizer(preset)`, pretrained).
        texts: list of str or a `Corpus`. Training documents; required for
            `"sentencepiece"` and `"bpe"`.
        vocab_size: int. Maximum vocabulary size; required for
            `"sentencepiece"` (>= 261) and `"bpe"` (>= 259).
        directory: str or None. If given, the tokenizer is saved there
            (`load_tokenizer(directory)` restores it).
        preset: str. The keras-hub preset of `"hub"` (a name or directory).
        **train_kwargs: passed to the trainer, e.g. `model_type="bpe"` for
            SentencePiece or `min_frequency=3` for BPE.

    Returns:
        A `ByteTokenizer`, `SentencePieceTokenizer`, `BytePairTokenizer` or
        `HubTokenizer`.

    Example:
    ```python
    corpus = python_source_corpus("train", max_documents=50)
    tokenizer = make_tokenizer("bpe", corpus.texts, vocab_size=1000, directory="workdir")
    same = load_tokenizer("workdir")
    ```
    """
    if not isinstance(name, str) or name not in TOKENIZER_KINDS:
        raise ValueError(f"`name` must be one of {', '.join(TOKENIZER_KINDS)}; got {name!r}.")
    if directory is not None:
        check_directory(directory)
    if name == "bytes":
        if train_kwargs:
            raise ValueError(f"The bytes tokenizer takes no training options; got {train_kwargs}.")
        tokenizer = ByteTokenizer()
    elif name == "hub":
        if preset is None or train_kwargs:
            raise ValueError(
                "The hub tokenizer needs `preset` (a keras-hub preset name or directory) and "
                f"takes no training options; got preset={preset!r}, {train_kwargs}."
            )
        tokenizer = HubTokenizer(preset)
    else:
        if vocab_size is None:
            raise ValueError(f"`vocab_size` is required for the {name!r} tokenizer.")
        train = train_sentencepiece if name == "sentencepiece" else train_bpe
        tokenizer = train(texts, vocab_size, **train_kwargs)
    if directory is not None:
        tokenizer.save(directory)
    return tokenizer
