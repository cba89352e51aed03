"""The prompts `generate` takes (texts or token ids), checked and turned into id rows."""

import numpy as np

from keras_memory.data.tokenizers.byte_tokenizer import ByteTokenizer


class PromptBatch:
    """A batch of prompts as rows of token ids, and how to give results back in their form.

    Texts are encoded with `tokenizer` and start with its BOS id (each
    prompt begins a document); token ids are taken as they are. With no
    tokenizer, texts are encoded as UTF-8 bytes (`ByteTokenizer`) when the
    model's vocabulary is the byte vocabulary, and refused otherwise.

    Args:
        prompts: a str, a list of str, a 1-D sequence of ids, or a list of
            1-D sequences (of any lengths) or a 2-D array of ids.
        vocab_size: int. The model's vocabulary size.
        tokenizer: a keras_memory tokenizer or None.

    Raises:
        ValueError: naming `prompts` (empty, ids outside the vocabulary,
            mixed types) or `tokenizer` (texts without one).
    """

    def __init__(self, prompts, vocab_size, tokenizer=None):
        self.single = isinstance(prompts, str) or _is_id_row(prompts)
        items = [prompts] if self.single else _as_list(prompts)
        if not items:
            raise ValueError("`prompts` is empty: give at least one prompt.")
        self.texts = all(isinstance(item, str) for item in items)
        if not self.texts and any(isinstance(item, str) for item in items):
            raise ValueError("`prompts` mixes texts and token ids; give one or the other.")
        self.tokenizer = None
        if self.texts:
            self.tokenizer = _text_tokenizer(tokenizer, vocab_size)
            rows = [
                np.concatenate([[self.tokenizer.bos_id], self.tokenizer.encode(text)])
                if text
                else np.zeros(0)
                for text in items
            ]
        else:
            rows = [_id_row(item, index) for index, item in enumerate(items)]
        for index, row in enumerate(rows):
            if row.size == 0:
                raise ValueError(f"`prompts[{index}]` is empty: a prompt needs at least one token.")
            if row.min() < 0 or row.max() >= vocab_size:
                raise ValueError(
                    f"`prompts[{index}]` has ids in [{row.min()}, {row.max()}], outside the "
                    f"vocabulary [0, {vocab_size})."
                )
        self.rows = [row.astype(np.int32) for row in rows]
        self.lengths = np.array([len(row) for row in self.rows], dtype=np.int64)

    def __len__(self):
        return len(self.rows)

    def results(self, rows):
        """`rows` (prompt + continuation ids per prompt) in the form the prompts came in.

        Texts give texts (special ids dropped), ids give int32 arrays; one
        prompt gives one result, a list gives a list.
        """
        if self.texts:
            rows = [self.tokenizer.decode(row) for row in rows]
        return rows[0] if self.single else rows


def _as_list(prompts):
    if isinstance(prompts, np.ndarray):
        if prompts.ndim != 2:
            raise ValueError(
                f"`prompts` as an array must be 1-D or 2-D token ids; got shape {prompts.shape}."
            )
        return list(prompts)
    if isinstance(prompts, (list, tuple)):
        return list(prompts)
    raise ValueError(
        "`prompts` must be a str, a list of str, or token ids (a 1-D or 2-D array, or a list "
        f"of id lists); got {type(prompts).__name__}."
    )


def _is_id_row(prompts):
    if isinstance(prompts, np.ndarray):
        return prompts.ndim == 1
    return (
        isinstance(prompts, (list, tuple))
        and bool(prompts)
        and all(isinstance(item, (int, np.integer)) for item in prompts)
    )


def _id_row(item, index):
    row = np.asarray(item)
    if row.ndim != 1 or (row.size and not np.issubdtype(row.dtype, np.integer)):
        raise ValueError(
            f"`prompts[{index}]` must be a 1-D sequence of integer ids; got "
            f"{'shape ' + str(row.shape) if row.ndim != 1 else 'dtype ' + str(row.dtype)}."
        )
    return row


def _text_tokenizer(tokenizer, vocab_size):
    if tokenizer is not None:
        if tokenizer.vocab_size != vocab_size:
            raise ValueError(
                f"`tokenizer` has a vocabulary of {tokenizer.vocab_size}; the model's is "
                f"{vocab_size}."
            )
        return tokenizer
    if vocab_size == ByteTokenizer.vocab_size:
        return ByteTokenizer()
    raise ValueError(
        f"Text prompts need the `tokenizer` the model was trained with (its vocabulary is "
        f"{vocab_size}, not the {ByteTokenizer.vocab_size} of bytes); or give token ids."
    )
