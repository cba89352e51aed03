"""SentencePiece: `SentencePieceTokenizer` and its offline trainer `train_sentencepiece`.

What round-trips (`decode(encode(text)) == text`): every str without the
character "▁" (U+2581), which SentencePiece uses to mark a space and so
decodes as " ". Whitespace (indentation, tabs, runs of spaces, trailing
spaces, "\\r\\n", blank lines) is kept: training and encoding use the
`identity` normalisation, no dummy prefix and no whitespace folding, and
characters outside the vocabulary fall back to their UTF-8 bytes
(`byte_fallback`). With `byte_fallback=False` such characters become the
unknown id 3 and decode as " ⁇ ".

keras-hub's `compute_sentence_piece_proto` fixes `pad 0, unk 1, bos 2,
eos 3` and the whitespace-folding `nmt_nfkc` normalisation, so
`train_sentencepiece` calls `sentencepiece` directly.
"""

import io
import os

from keras_memory.data.tokenizers.byte_tokenizer import BOS_ID, EOS_ID, PAD_ID
from keras_memory.data.tokenizers.config_file import write_config
from keras_memory.data.tokenizers.keras_hub_tokenizer import FIRST_ORDINARY_ID, KerasHubTokenizer
from keras_memory.data.tokenizers.texts import texts_list

# Meta pieces (pad, bos, eos, unk) and the 256 byte pieces of `byte_fallback`.
MIN_SENTENCEPIECE_VOCAB = 4 + 256 + 1


class SentencePieceTokenizer(KerasHubTokenizer):
    """A SentencePiece model run by `keras_hub.tokenizers.SentencePieceTokenizer`.

    The model must hold `<pad>` at id 0, `<s>` at 1, `</s>` at 2 and its
    unknown piece at an id >= 3, as `train_sentencepiece` makes it. The
    keras-hub layer is `self.layer`; it runs TensorFlow Text ops, so it also
    tokenizes inside `tf.data` (`tf_tokenize`, `tokenize_in_tf_data`).

    `decode(encode(text)) == text` for every text without "▁" (U+2581) when
    the model was trained by `train_sentencepiece` (identity normalisation,
    no dummy prefix, whitespace kept, byte fallback); see the module notes.

    Args:
        proto: bytes of a serialized SentencePiece model, or the path of a
            `.model` file.

    Example:
    ```python
    tokenizer = train_sentencepiece(texts, vocab_size=1000)
    ids = tokenizer.encode("def f(x):\\n    return x\\n")
    assert tokenizer.decode(ids) == "def f(x):\\n    return x\\n"
    ```

    References:
        - [Kudo and Richardson, 2018](https://arxiv.org/abs/1808.06226)
    """

    kind = "sentencepiece"
    model_filename = "tokenizer_sentencepiece.model"

    def __init__(self, proto):
        import keras_hub
        import sentencepiece as spm

        if isinstance(proto, (str, os.PathLike)):
            with open(proto, "rb") as f:
                proto = f.read()
        if not isinstance(proto, (bytes, bytearray)):
            raise ValueError(
                f"`proto` must be the bytes or the path of a SentencePiece model; got "
                f"{type(proto).__name__}."
            )
        proto = bytes(proto)
        processor = spm.SentencePieceProcessor(model_proto=proto)
        ids = (processor.pad_id(), processor.bos_id(), processor.eos_id())
        if ids != (PAD_ID, BOS_ID, EOS_ID) or processor.unk_id() < FIRST_ORDINARY_ID:
            raise ValueError(
                "`proto` must be a SentencePiece model with pad_id=0, bos_id=1, eos_id=2 "
                f"and unk_id>=3 (as `train_sentencepiece` makes); got pad_id={ids[0]}, "
                f"bos_id={ids[1]}, eos_id={ids[2]}, unk_id={processor.unk_id()}."
            )
        self.proto = proto
        self.unk_id = processor.unk_id()
        layer = keras_hub.tokenizers.SentencePieceTokenizer(proto=proto, dtype="int32")
        super().__init__(layer, layer.vocabulary_size())

    def _rebuild_tf_resources(self):
        super()._rebuild_tf_resources()
        self.layer.set_proto(self.proto)

    def save(self, directory):
        """Writes the model and `tokenizer.json` into `directory` (created if missing)."""
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, self.model_filename), "wb") as f:
            f.write(self.proto)
        write_config(directory, self, files={"proto": self.model_filename})

    @classmethod
    def from_files(cls, directory, files):
        """Restores the tokenizer `save` wrote: `files` is its `tokenizer.json` entry."""
        return cls(os.path.join(directory, files["proto"]))


def _chunk_document(text, max_bytes):
    """Splits `text` at line ends into pieces of at most `max_bytes` UTF-8 bytes."""
    if len(text.encode("utf-8")) <= max_bytes:
        yield text
        return
    chunk, size = [], 0
    for line in text.splitlines(keepends=True):
        n = len(line.encode("utf-8"))
        if chunk and size + n > max_bytes:
            yield "".join(chunk)
            chunk, size = [], 0
        if n > max_bytes:
            # A single over-long line: cut it by characters (<= 4 bytes each).
            step = max(1, max_bytes // 4)
            for start in range(0, len(line), step):
                yield line[start : start + step]
            continue
        chunk.append(line)
        size += n
    if chunk:
        yield "".join(chunk)


def train_sentencepiece(
    texts,
    vocab_size,
    model_type="unigram",
    byte_fallback=True,
    character_coverage=0.9995,
    max_sentence_length=1 << 16,
    **options,
):
    """Trains a SentencePiece model on `texts`, offline, with our special ids.

    Trains with the `sentencepiece` package directly:
    `keras_hub.tokenizers.compute_sentence_piece_proto` fixes
    `pad_id=0, unk_id=1, bos_id=2, eos_id=3` and the `nmt_nfkc`
    normalisation (which folds whitespace), so it can give neither our ids
    nor round-trips of code. Here `pad_id=0, bos_id=1, eos_id=2, unk_id=3`;
    normalisation is `identity` with `remove_extra_whitespaces=False`,
    `add_dummy_prefix=False` and `allow_whitespace_only_pieces=True`, so
    indentation, runs of spaces, tabs, "\\r\\n" and newlines are kept and
    may join pieces (such as "):\\n" or eight spaces). Documents are fed
    whole, cut at line ends into "sentences" of at most `max_sentence_length`
    bytes.

    `vocab_size` is a maximum: with `hard_vocab_limit=False` a corpus too
    small to support it gives fewer pieces (read the result's `vocab_size`).
    The smallest vocabulary holds the 4 meta pieces, the 256 byte pieces
    (with `byte_fallback`) and every character kept by `character_coverage`.

    Args:
        texts: list of str (the documents), or a `Corpus`.
        vocab_size: int. Maximum vocabulary size, special ids included.
        model_type: str. `"unigram"` or `"bpe"`.
        byte_fallback: bool. Encode characters outside the vocabulary as their
            UTF-8 bytes (lossless) instead of the unknown id 3.
        character_coverage: float. Share of the corpus' characters that get
            a piece of their own; the rest fall back to bytes.
        max_sentence_length: int. Longest training "sentence" in bytes.
        **options: more `sentencepiece.SentencePieceTrainer.train` options
            (e.g. `input_sentence_size`, `num_threads`, `split_digits`); they
            override the defaults above, except the special ids.

    Returns:
        A `SentencePieceTokenizer`.

    Example:
    ```python
    corpus = python_source_corpus("train", max_documents=50)
    tokenizer = train_sentencepiece(corpus.texts, vocab_size=1000, model_type="bpe")
    assert tokenizer.vocab_size == 1000
    ```

    References:
        - [Kudo, 2018](https://arxiv.org/abs/1804.10959) (unigram)
        - [Kudo and Richardson, 2018](https://arxiv.org/abs/1808.06226)
    """
    import sentencepiece as spm

    texts = texts_list(texts)
    if model_type not in ("unigram", "bpe"):
        raise ValueError(f"`model_type` must be 'unigram' or 'bpe'; got {model_type!r}.")
    if not isinstance(vocab_size, int) or vocab_size < MIN_SENTENCEPIECE_VOCAB:
        raise ValueError(
            f"`vocab_size` must be an int >= {MIN_SENTENCEPIECE_VOCAB} for SentencePiece "
            f"(4 special pieces, 256 byte pieces and the corpus' characters); got {vocab_size!r}."
        )
    for key in ("pad_id", "bos_id", "eos_id", "unk_id"):
        if key in options:
            raise ValueError(f"`{key}` is fixed (pad 0, bos 1, eos 2, unk 3); do not pass it.")
    sentences = [
        chunk for text in texts if text for chunk in _chunk_document(text, max_sentence_length)
    ]
    settings = dict(
        model_type=model_type,
        vocab_size=vocab_size,
        byte_fallback=byte_fallback,
        character_coverage=character_coverage,
        max_sentence_length=max_sentence_length,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=False,
        allow_whitespace_only_pieces=True,
        split_by_whitespace=True,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    settings.update(options)
    settings.update(pad_id=PAD_ID, bos_id=BOS_ID, eos_id=EOS_ID, unk_id=FIRST_ORDINARY_ID)
    writer = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=writer, **settings
        )
    except RuntimeError as error:
        message = str(error)
        if "vocab_size" in message or "Vocabulary size" in message:
            raise ValueError(
                f"`vocab_size`={vocab_size} does not fit this corpus: {message.strip()}"
            ) from error
        raise
    return SentencePieceTokenizer(writer.getvalue())
