"""The shared code of the tokenizers that wrap a keras-hub tokenizer layer.

keras-hub notes (0.32):

- Eager calls of a keras-hub tokenizer run a pure Python path (the
  `sentencepiece` package, or the Hugging Face `tokenizers` library for BPE);
  `tf.data` and `tf.function` run the TensorFlow Text path. For BPE the two
  pre-split text differently (Llama 3 vs GPT-2 patterns) and give other
  ids, so `encode` always runs the TensorFlow path. Its first call traces a
  graph (a few seconds for BPE); BPE encodes roughly 0.1-0.2 MB/s per core.
- tensorflow-text's SentencePiece model is a resource owned by an eager
  kernel: `tf.random.set_seed` / `keras.utils.set_random_seed` delete it.
  `encode` and `tokenize_in_tf_data` rebuild it; call
  `ensure_tf_resources()` before mapping `tokenizer.layer` yourself.
"""

import numpy as np

from keras_memory.data.tokenizers.byte_tokenizer import BOS_ID, EOS_ID, PAD_ID
from keras_memory.data.tokenizers.texts import to_str

# Ids below are pad, bos and eos; trained vocabularies put ordinary tokens after.
FIRST_ORDINARY_ID = 3


class KerasHubTokenizer:
    """Base of the tokenizers that wrap a keras-hub tokenizer layer.

    Subclasses (`SentencePieceTokenizer`, `BytePairTokenizer`,
    `HubTokenizer`) make the keras-hub layer; this class gives them
    `ByteTokenizer`'s interface: `encode` (run through the layer's
    TensorFlow graph, so it equals the `tf.data` path), `decode` (special
    ids skipped), `tf_tokenize` and `special_ids`.

    Args:
        layer: a `keras_hub.tokenizers.Tokenizer`, kept as `self.layer`.
        vocab_size: int. Number of ids.
    """

    kind = None
    pad_id = PAD_ID
    bos_id = BOS_ID
    eos_id = EOS_ID

    def __init__(self, layer, vocab_size):
        self.layer = layer
        self.vocab_size = int(vocab_size)
        self._encode_fn = None

    @property
    def special_ids(self):
        """`{"bos_id", "eos_id", "pad_id"}`, as `SegmentStream` takes them."""
        return {"bos_id": self.bos_id, "eos_id": self.eos_id, "pad_id": self.pad_id}

    def tf_tokenize(self, text):
        """Ids of a scalar `tf.string` tensor, in TensorFlow Text ops (for `tf.data`).

        Calls the keras-hub tokenizer layer; inside `tf.data` or a
        `tf.function` it runs its TensorFlow graph path on any Keras backend.

        Args:
            text: scalar `tf.string` tensor.

        Returns:
            1-D `tf.int32` tensor, equal to `encode(text)`.
        """
        import tensorflow as tf

        return tf.cast(self.layer(text), tf.int32)

    def encode(self, text):
        """Returns the int32 ids of `text` (a str or UTF-8 bytes), without BOS/EOS.

        Runs the keras-hub layer's TensorFlow graph (the path `tf.data` runs),
        so the ids equal those of `tokenize_in_tf_data`.
        """
        import tensorflow as tf

        text = to_str(text)
        try:
            ids = self._run_encode_fn(text)
        except tf.errors.NotFoundError:
            # tensorflow-text's SentencePiece model is a resource owned by an
            # eager kernel: `tf.random.set_seed` (and so
            # `keras.utils.set_random_seed`) clears the kernel cache and
            # deletes it. Rebuild it and trace again.
            self._rebuild_tf_resources()
            ids = self._run_encode_fn(text)
        return np.asarray(ids.numpy(), dtype=np.int32).reshape(-1)

    def ensure_tf_resources(self):
        """Rebuilds TensorFlow resources deleted since the layer was made.

        `tf.random.set_seed` and `keras.utils.set_random_seed` delete the
        SentencePiece model resource of tensorflow-text; call this before
        mapping `self.layer` or `tf_tokenize` in a `tf.data` pipeline of your
        own (`tokenize_in_tf_data` and `encode` do it themselves).
        """
        self.encode("")

    def _run_encode_fn(self, text):
        import tensorflow as tf

        if self._encode_fn is None:
            # Without AutoGraph: the layer's control flow is already in
            # `tf.cond`/`tf.while_loop`, and converting keras-hub's code costs
            # seconds per trace.
            self._encode_fn = tf.function(
                self.tf_tokenize,
                input_signature=[tf.TensorSpec([], tf.string)],
                autograph=False,
            )
        return self._encode_fn(tf.constant(text, dtype=tf.string))

    def _rebuild_tf_resources(self):
        self._encode_fn = None

    def _ordinary_ids(self, ids):
        ids = np.asarray(ids).reshape(-1).astype(np.int64)
        return ids[(ids >= FIRST_ORDINARY_ID) & (ids < self.vocab_size)]

    def decode(self, ids):
        """Returns the text of `ids`, skipping special ids; bad UTF-8 is replaced."""
        ids = self._ordinary_ids(ids)
        if not ids.size:
            return ""
        return to_str(self.layer.detokenize([int(i) for i in ids]))

    def __repr__(self):
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"
