"""Streams of in-order segments of documents: the data side of the memory contract.

Each batch row reads whole documents one after another, one segment per
step; the first segment of a document carries `reset=True`. Documents (never
the segments of one document) are shuffled with a seed. Nothing is dropped:
a document's last segment is padded with `PAD_ID` targets, which the loss
ignores, and rows that run out of documents early are filled with all-padding
segments.
"""

import keras
import numpy as np

from keras_memory.data.tokenizers.byte_tokenizer import BOS_ID, EOS_ID, PAD_ID
from keras_memory.ops.checks import check_int


def document_segments(tokens, segment_length, bos_id=BOS_ID, eos_id=EOS_ID, pad_id=PAD_ID):
    """Splits one document into `(inputs, targets)` segments.

    The model reads `[BOS] + tokens` and predicts `tokens + [EOS]`, so every
    token of the document is predicted exactly once.

    Args:
        tokens: 1-D int array of the document's ids (no BOS/EOS).
        segment_length: int. Tokens per segment.
        bos_id: int. Id read before the first token.
        eos_id: int. Id predicted after the last token.
        pad_id: int. Id of the inputs and targets past the document's end
            (the loss ignores these targets).

    Returns:
        Two int32 arrays `(num_segments, segment_length)`, padded with
        `pad_id`.
    """
    segment_length = check_int("segment_length", segment_length)
    special = {
        name: check_int(name, value, minimum=0)
        for name, value in (("bos_id", bos_id), ("eos_id", eos_id), ("pad_id", pad_id))
    }
    tokens = check_token_ids("tokens", tokens)
    bos_id, eos_id, pad_id = special["bos_id"], special["eos_id"], special["pad_id"]
    sequence = np.concatenate([[bos_id], tokens, [eos_id]]).astype(np.int32)
    length = len(sequence) - 1
    num_segments = -(-length // segment_length)
    padded = np.full(num_segments * segment_length + 1, pad_id, dtype=np.int32)
    padded[: len(sequence)] = sequence
    inputs = padded[:-1].reshape(num_segments, segment_length)
    targets = padded[1:].reshape(num_segments, segment_length)
    # Inputs past the document's end are padding too (by position, so a
    # vocabulary whose EOS is also its padding id keeps its last token).
    past_end = np.arange(num_segments * segment_length).reshape(inputs.shape) >= length
    inputs = np.where(past_end, pad_id, inputs)
    return inputs, targets


class SegmentStream(keras.utils.PyDataset):
    """Batches of in-order segments of documents, for `model.fit` on any backend.

    Step `i` yields `({"tokens": (B, S) int32, "reset": (B,) bool}, targets
    (B, S) int32)`. Row `b` reads its documents in order, one segment per
    step. Documents are grouped into rows once (balanced by length, so every
    epoch has the same number of steps); with a seed, the order of documents
    within each row and the row each group lands in are shuffled;
    `set_epoch(e)` lays them out anew with seed `seed + e`. It is a
    `keras.utils.PyDataset`, which Keras feeds in index order on every
    backend (a stateful `MemoryLM.fit` refuses `shuffle=True`);
    `as_tf_dataset()` gives a `tf.data` view.

    Args:
        documents: list of 1-D int arrays (token ids, no BOS/EOS).
        batch_size: int. Rows per batch.
        segment_length: int. Tokens per segment.
        seed: int or None. Document-shuffle seed; None keeps the given order.
        vocab_size: int or None. If given, every id is checked against it.
        bos_id: int. Id read before a document's first token (see
            `document_segments`); defaults to `ByteTokenizer`'s.
        eos_id: int. Id predicted after its last token.
        pad_id: int. Id of the padding, whose targets the loss ignores. A
            keras-hub vocabulary passes its own ids, e.g. GPT-2's
            `<|endoftext|>` (50256) for all three.

    Example:
    ```python
    tokenizer = ByteTokenizer()
    docs = [tokenizer.encode(text) for text in ["first doc", "second one"]]
    stream = SegmentStream(docs, batch_size=2, segment_length=8, seed=0)
    inputs, targets = stream[0]
    ```
    """

    def __init__(
        self,
        documents,
        batch_size,
        segment_length,
        seed=None,
        vocab_size=None,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        pad_id=PAD_ID,
    ):
        super().__init__()
        batch_size = check_int("batch_size", batch_size)
        segment_length = check_int("segment_length", segment_length)
        vocab_size = check_int("vocab_size", vocab_size, allow_none=True)
        seed = check_int("seed", seed, minimum=0, allow_none=True)
        special_ids = {
            name: check_int(name, value, minimum=0, maximum=vocab_size)
            for name, value in (("bos_id", bos_id), ("eos_id", eos_id), ("pad_id", pad_id))
        }
        if documents is None or isinstance(documents, (str, bytes, dict)):
            raise ValueError(
                "`documents` must be a list of 1-D arrays of token ids; got "
                f"{type(documents).__name__}."
            )
        if isinstance(documents, np.ndarray) and documents.ndim < 2:
            raise ValueError(
                "`documents` must be a list of documents; got one 1-D array (wrap a single "
                "document in a list)."
            )
        documents = [
            check_token_ids(f"documents[{i}]", d, vocab_size) for i, d in enumerate(documents)
        ]
        if not documents:
            raise ValueError("`documents` is empty: nothing to stream.")
        self.documents = documents
        self.batch_size = batch_size
        self.segment_length = segment_length
        self.seed = seed
        self.special_ids = special_ids
        self._epoch = 0
        self._rows = None
        self._layout()

    def _layout(self):
        # Rows are balanced once (longest document first, each to the least
        # loaded row), so the number of steps is the same every epoch, as
        # `model.fit` requires; the seed then shuffles the order of the
        # documents inside each row and which row reads which group.
        if self._rows is None:
            lengths = [_num_segments(len(doc), self.segment_length) for doc in self.documents]
            rows = [[] for _ in range(self.batch_size)]
            loads = np.zeros(self.batch_size, dtype=np.int64)
            for doc_id in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
                row = int(np.argmin(loads))
                rows[row].append(doc_id)
                loads[row] += lengths[doc_id]
            self._rows, self._num_steps = rows, int(loads.max())
        rows = [sorted(r) for r in self._rows]
        if self.seed is not None:
            rng = np.random.default_rng(self.seed + self._epoch)
            rows = [list(rng.permutation(r)) for r in rows]
            rows = [rows[i] for i in rng.permutation(self.batch_size)]
        self.row_documents = rows
        # (step, row) -> (document, segment index); -1 marks filler.
        self._index = np.full((self._num_steps, self.batch_size, 2), -1, dtype=np.int64)
        for row, doc_ids in enumerate(rows):
            step = 0
            for doc_id in doc_ids:
                n = _num_segments(len(self.documents[doc_id]), self.segment_length)
                self._index[step : step + n, row, 0] = doc_id
                self._index[step : step + n, row, 1] = np.arange(n)
                step += n
        self._cache = {}

    def __len__(self):
        return self._num_steps

    def __getitem__(self, step):
        if not isinstance(step, (int, np.integer)) or isinstance(step, bool):
            raise TypeError(f"`step` must be an int; got {step!r}.")
        if not 0 <= step < self._num_steps:
            raise IndexError(f"Step {step} is outside [0, {self._num_steps}).")
        shape = (self.batch_size, self.segment_length)
        tokens = np.full(shape, self.special_ids["pad_id"], dtype=np.int32)
        targets = np.full(shape, self.special_ids["pad_id"], dtype=np.int32)
        reset = np.ones(self.batch_size, dtype=bool)
        for row in range(self.batch_size):
            doc_id, segment = self._index[step, row]
            if doc_id < 0:
                continue
            inputs, outputs = self._segments(doc_id)
            tokens[row], targets[row] = inputs[segment], outputs[segment]
            reset[row] = segment == 0
        return {"tokens": tokens, "reset": reset}, targets

    def _segments(self, doc_id):
        if doc_id not in self._cache:
            if len(self._cache) > 4 * self.batch_size:
                self._cache.clear()
            self._cache[doc_id] = document_segments(
                self.documents[doc_id], self.segment_length, **self.special_ids
            )
        return self._cache[doc_id]

    @property
    def epoch(self):
        """The epoch the current layout belongs to."""
        return self._epoch

    def set_epoch(self, epoch):
        """Re-lays out the documents for `epoch` (shuffle seed `seed + epoch`).

        The layout is fixed otherwise: Keras calls the `PyDataset` epoch hooks
        at times (e.g. before the first epoch) that make them no basis for a
        deterministic order.
        """
        self._epoch = check_int("epoch", epoch, minimum=0)
        self._layout()

    def as_tf_dataset(self):
        """Returns a `tf.data.Dataset` of the same batches, in order (one epoch)."""
        import tensorflow as tf

        b, s = self.batch_size, self.segment_length
        signature = (
            {
                "tokens": tf.TensorSpec((b, s), tf.int32),
                "reset": tf.TensorSpec((b,), tf.bool),
            },
            tf.TensorSpec((b, s), tf.int32),
        )
        return tf.data.Dataset.from_generator(
            lambda: (self[i] for i in range(len(self))), output_signature=signature
        )


def check_token_ids(name, tokens, vocab_size=None):
    """Returns one document's ids as a 1-D int32 array, or raises ValueError naming `name`.

    The ids must be integers (a float array would be truncated silently),
    at most 1-D, in `[0, vocab_size)` (`[0, 2**31)` without a vocabulary).

    Args:
        name: str. The argument's name, e.g. `"documents[3]"`.
        tokens: array-like of token ids.
        vocab_size: int or None. Exclusive upper bound of the ids.

    Returns:
        A 1-D int32 numpy array.
    """
    if isinstance(tokens, (str, bytes)):
        raise ValueError(f"`{name}` must be token ids, not text; encode it with a tokenizer first.")
    array = np.asarray(tokens)
    if array.size == 0:
        return np.zeros((0,), np.int32)
    if array.ndim > 1:
        raise ValueError(f"`{name}` must be a 1-D array of token ids; got shape {array.shape}.")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"`{name}` must hold integer ids; got dtype {array.dtype}.")
    upper = np.iinfo(np.int32).max + 1 if vocab_size is None else vocab_size
    low, high = array.min(), array.max()
    if low < 0 or high >= upper:
        bound = f"vocab_size={vocab_size}" if vocab_size is not None else "2**31"
        raise ValueError(f"`{name}` has ids outside [0, {bound}): [{low}, {high}].")
    return array.reshape(-1).astype(np.int32)


def _num_segments(num_tokens, segment_length):
    return -(-(num_tokens + 1) // segment_length)
