"""Tokenizers with one interface, their trainers and their storage.

Four kinds share one interface (`kind`, `vocab_size`, `pad_id`, `bos_id`,
`eos_id`, `special_ids`, `encode(text) -> int32 ids`, `decode(ids) -> str`,
`tf_tokenize(text)`, `save(directory)`), so a training workdir can hold the
tokenizer and `load_tokenizer(workdir)` gives it back for evaluation and
generation:

- `"bytes"`: `ByteTokenizer`, UTF-8 bytes (the default; no training).
- `"sentencepiece"`: `SentencePieceTokenizer`, a SentencePiece unigram or BPE
  model (`train_sentencepiece`) run by `keras_hub.tokenizers.SentencePieceTokenizer`.
- `"bpe"`: `BytePairTokenizer`, a GPT-2 style byte-level BPE (`train_bpe`,
  learned with the Hugging Face `tokenizers` library) run by
  `keras_hub.tokenizers.BytePairTokenizer`.
- `"hub"`: `HubTokenizer`, a pretrained keras-hub preset's tokenizer with
  its own special ids (`special_token_ids`).

The subword kinds are trained offline on the user's own texts; nothing is
downloaded. The keras-hub layers run TensorFlow Text ops, so the same
tokenization also runs inside `tf.data` (`tokenize_in_tf_data`,
`tf_tokenize`). `encode` runs those same TensorFlow ops (in a
`tf.function`), so the ids of `encode` and of a `tf.data` pipeline are
identical on every Keras backend.

What round-trips (`decode(encode(text)) == text`): bytes, every str;
sentencepiece, every str without "▁" (U+2581); bpe, every str without "६"
(U+096C). See the modules `sentencepiece` and `byte_pair`.

Modules, each importing only those above it:

- `config_file`: the `tokenizer.json` record (no tokenizer class).
- `texts`: documents given as str, bytes, a list or a `Corpus`.
- `byte_tokenizer`: `ByteTokenizer` and the special ids `PAD_ID`,
  `BOS_ID`, `EOS_ID`.
- `keras_hub_tokenizer`: `KerasHubTokenizer`, the base of the subword kinds.
- `sentencepiece`, `byte_pair`, `hub`: one kind each, with its trainer.
- `storage`: `save_tokenizer`, `load_tokenizer`.
- `factory`: `make_tokenizer`.
- `tf_data`: `tokenize_in_tf_data`.
"""

from keras_memory.data.tokenizers.byte_pair import SPECIAL_TOKENS, BytePairTokenizer, train_bpe
from keras_memory.data.tokenizers.byte_tokenizer import BOS_ID, EOS_ID, PAD_ID, ByteTokenizer
from keras_memory.data.tokenizers.config_file import CONFIG_FILENAME, TOKENIZER_KINDS
from keras_memory.data.tokenizers.factory import make_tokenizer
from keras_memory.data.tokenizers.hub import HubTokenizer, special_token_ids
from keras_memory.data.tokenizers.keras_hub_tokenizer import KerasHubTokenizer
from keras_memory.data.tokenizers.sentencepiece import SentencePieceTokenizer, train_sentencepiece
from keras_memory.data.tokenizers.storage import load_tokenizer, save_tokenizer
from keras_memory.data.tokenizers.tf_data import tokenize_in_tf_data

__all__ = [
    "BOS_ID",
    "CONFIG_FILENAME",
    "EOS_ID",
    "PAD_ID",
    "SPECIAL_TOKENS",
    "TOKENIZER_KINDS",
    "BytePairTokenizer",
    "ByteTokenizer",
    "HubTokenizer",
    "KerasHubTokenizer",
    "SentencePieceTokenizer",
    "load_tokenizer",
    "make_tokenizer",
    "save_tokenizer",
    "special_token_ids",
    "tokenize_in_tf_data",
    "train_bpe",
    "train_sentencepiece",
]
