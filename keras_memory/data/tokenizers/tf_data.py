"""`tokenize_in_tf_data`: tokenization inside a `tf.data` pipeline."""

import numpy as np

from keras_memory.data.tokenizers.byte_tokenizer import ByteTokenizer
from keras_memory.data.tokenizers.keras_hub_tokenizer import KerasHubTokenizer
from keras_memory.data.tokenizers.texts import to_str


def tokenize_in_tf_data(tokenizer, texts, num_parallel_calls=None):
    """Tokenizes `texts` in a `tf.data` pipeline (TensorFlow Text ops for subwords).

    A `tf.data.Dataset` of the texts is mapped through `tokenizer.tf_tokenize`:
    the keras-hub tokenizer layer for `"sentencepiece"`, `"bpe"` and `"hub"`, or
    `tf.io.decode_raw` for bytes. The ids equal `tokenizer.encode(text)` for
    every text, on every Keras backend.

    Args:
        tokenizer: a tokenizer of `keras_memory.data` (any kind).
        texts: list of str, or a `Corpus`.
        num_parallel_calls: int, `tf.data.AUTOTUNE` or None (sequential).
            Order is kept either way.

    Returns:
        A list of 1-D int32 numpy arrays, one per text.

    Example:
    ```python
    ids = tokenize_in_tf_data(tokenizer, ["first doc", "second one"])
    assert all(np.array_equal(a, tokenizer.encode(t)) for a, t in zip(ids, texts))
    ```
    """
    import tensorflow as tf

    texts = [to_str(t) for t in getattr(texts, "texts", texts)]
    if not texts:
        return []
    if isinstance(tokenizer, KerasHubTokenizer):
        tokenizer.ensure_tf_resources()
        fn = tokenizer.tf_tokenize
    elif isinstance(tokenizer, ByteTokenizer):
        fn = tokenizer.tf_tokenize
    else:
        raise ValueError(
            f"`tokenizer` must be a tokenizer of keras_memory.data; got {type(tokenizer).__name__}."
        )
    # AutoGraph would re-convert keras-hub's code (seconds); it needs none.
    fn = tf.autograph.experimental.do_not_convert(fn)
    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(texts, dtype=tf.string))
    if num_parallel_calls is None:
        dataset = dataset.map(fn)
    else:
        dataset = dataset.map(fn, num_parallel_calls=num_parallel_calls, deterministic=True)
    return [np.asarray(ids, dtype=np.int32).reshape(-1) for ids in dataset.as_numpy_iterator()]
