"""The default tokenizer: UTF-8 bytes."""

import os

import numpy as np

from keras_memory.data.tokenizers.config_file import write_config

PAD_ID = 0
BOS_ID = 1
EOS_ID = 2
_OFFSET = 3


class ByteTokenizer:
    """Maps text to UTF-8 bytes shifted past three special ids.

    Ids: 0 padding, 1 beginning of document, 2 end of document, byte `b` is
    `b + 3`; the vocabulary has 259 entries. One token per byte makes the
    loss in bits per token the bits per byte of the papers' tables.

    Example:
    ```python
    tokenizer = ByteTokenizer()
    ids = tokenizer.encode("def f():")
    assert tokenizer.decode(ids) == "def f():"
    ```
    """

    kind = "bytes"
    vocab_size = 256 + _OFFSET
    pad_id = PAD_ID
    bos_id = BOS_ID
    eos_id = EOS_ID

    @property
    def special_ids(self):
        """`{"bos_id", "eos_id", "pad_id"}`, as `SegmentStream` takes them."""
        return {"bos_id": self.bos_id, "eos_id": self.eos_id, "pad_id": self.pad_id}

    def encode(self, text):
        """Returns the int32 ids of `text` (a str or bytes), without BOS/EOS."""
        if isinstance(text, str):
            data = text.encode("utf-8")
        elif isinstance(text, (bytes, bytearray, memoryview)):
            data = bytes(text)
        else:
            # bytes(5) would be five zero bytes, bytes([104, 105]) "hi": never guess.
            raise TypeError(f"`text` must be a str or bytes; got {type(text).__name__}.")
        return np.frombuffer(data, dtype=np.uint8).astype(np.int32) + _OFFSET

    def decode(self, ids):
        """Returns the text of `ids`, skipping special ids; bad UTF-8 is replaced.

        Raises ValueError for ids that are not integers in `[0, vocab_size)`.
        """
        ids = np.asarray(ids).reshape(-1)
        if not ids.size:
            return ""
        if not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"`ids` must be integer token ids; got dtype {ids.dtype}.")
        if ids.min() < 0 or ids.max() >= self.vocab_size:
            # uint8 would wrap an id of 300 to a wrong byte without a word.
            raise ValueError(
                f"`ids` must lie in [0, vocab_size={self.vocab_size}); got values in "
                f"[{ids.min()}, {ids.max()}]."
            )
        data = (ids[ids >= _OFFSET] - _OFFSET).astype(np.uint8).tobytes()
        return data.decode("utf-8", errors="replace")

    def tf_tokenize(self, text):
        """Ids of a scalar `tf.string` tensor in TensorFlow ops (for `tf.data`).

        Returns:
            A 1-D `tf.int32` tensor equal to `encode(text)`.
        """
        import tensorflow as tf

        return tf.cast(tf.io.decode_raw(text, tf.uint8), tf.int32) + _OFFSET

    def save(self, directory):
        """Writes `tokenizer.json` into `directory`, for `load_tokenizer`."""
        os.makedirs(directory, exist_ok=True)
        write_config(directory, self, files={})

    def __repr__(self):
        return f"ByteTokenizer(vocab_size={self.vocab_size})"
