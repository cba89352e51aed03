"""Text given to the tokenizers: one document as str, or a list of documents."""


def to_str(text):
    """Returns `text` (a str or UTF-8 bytes) as a str, or raises TypeError naming `text`."""
    if isinstance(text, str):
        return text
    if isinstance(text, (bytes, bytearray)):
        return bytes(text).decode("utf-8")
    raise TypeError(f"`text` must be a str or UTF-8 bytes; got {type(text).__name__}.")


def texts_list(texts):
    """Returns `texts` (a list of str, a `Corpus` or any iterable) as a list of str.

    Raises ValueError naming `texts` for None, a single string, or documents
    that hold no text at all (nothing to train a tokenizer on).
    """
    if texts is None:
        raise ValueError("`texts` is required to train a tokenizer; got None.")
    if isinstance(texts, (str, bytes)):
        raise ValueError("`texts` must be a list of documents, not a single string.")
    texts = getattr(texts, "texts", texts)  # A `Corpus`.
    texts = [to_str(text) for text in texts]
    if not any(texts):
        raise ValueError("`texts` holds no text: nothing to train on.")
    return texts
