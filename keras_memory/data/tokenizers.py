"""Trained subword tokenizers with `ByteTokenizer`'s interface, and their storage.

Three kinds share one interface (`vocab_size`, `pad_id == 0`, `bos_id == 1`,
`eos_id == 2`, `encode(text) -> int32 ids`, `decode(ids) -> str`,
`save(directory)`), so a training workdir can hold the tokenizer and
`load_tokenizer(workdir)` gives it back for evaluation and generation:

- `"bytes"`: `ByteTokenizer`, UTF-8 bytes (the default; no training).
- `"sentencepiece"`: `SentencePieceTokenizer`, a SentencePiece unigram or BPE
  model (`train_sentencepiece`) run by `keras_hub.tokenizers.SentencePieceTokenizer`.
- `"bpe"`: `BytePairTokenizer`, a GPT-2 style byte-level BPE (`train_bpe`,
  learned with the Hugging Face `tokenizers` library) run by
  `keras_hub.tokenizers.BytePairTokenizer`.

Everything is trained offline on the user's own texts; nothing is downloaded.
The keras-hub layers run TensorFlow Text ops, so the same tokenization also
runs inside `tf.data` (`tokenize_in_tf_data`, `tf_tokenize`). `encode` runs
those same TensorFlow ops (in a `tf.function`), so the ids of `encode` and of a
`tf.data` pipeline are identical on every Keras backend.

What round-trips (`decode(encode(text)) == text`):

- bytes: every str.
- sentencepiece: every str without the character "▁" (U+2581), which
  SentencePiece uses to mark a space and so decodes as " ". Whitespace
  (indentation, tabs, runs of spaces, trailing spaces, "\\r\\n", blank lines)
  is kept: training and encoding use the `identity` normalisation, no
  dummy prefix and no whitespace folding, and characters outside the
  vocabulary fall back to their UTF-8 bytes (`byte_fallback`). With
  `byte_fallback=False` such characters become the unknown id 3 and decode
  as " ⁇ ".
- bpe: every str without the character "६" (U+096C, DEVANAGARI DIGIT SIX),
  which keras-hub's TensorFlow pre-tokenizer uses as an internal marker
  and deletes from the input.

keras-hub notes (0.32):

- Eager calls of a keras-hub tokenizer run a pure Python path (the
  `sentencepiece` package, or the Hugging Face `tokenizers` library for BPE);
  `tf.data` and `tf.function` run the TensorFlow Text path. For BPE the two
  pre-split text differently (Llama 3 vs GPT-2 patterns) and give other
  ids, so `encode` always runs the TensorFlow path. Its first call traces a
  graph (a few seconds for BPE); BPE encodes roughly 0.1-0.2 MB/s per core.
- `compute_sentence_piece_proto` fixes `pad 0, unk 1, bos 2, eos 3` and the
  whitespace-folding `nmt_nfkc` normalisation, so `train_sentencepiece`
  calls `sentencepiece` directly.
- tensorflow-text's SentencePiece model is a resource owned by an eager
  kernel: `tf.random.set_seed` / `keras.utils.set_random_seed` delete it.
  `encode` and `tokenize_in_tf_data` rebuild it; call
  `ensure_tf_resources()` before mapping `tokenizer.layer` yourself.
"""

import io
import json
import os

import numpy as np

from keras_memory.data.byte_tokenizer import BOS_ID, EOS_ID, PAD_ID, ByteTokenizer

CONFIG_FILENAME = "tokenizer.json"
TOKENIZER_KINDS = ("bytes", "sentencepiece", "bpe", "hub")
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>")
_FIRST_ORDINARY_ID = 3
_FORMAT_VERSION = 1
# Meta pieces (pad, bos, eos, unk) and the 256 byte pieces of `byte_fallback`.
_MIN_SENTENCEPIECE_VOCAB = 4 + 256 + 1
# Special tokens and the 256 byte symbols of a byte-level BPE.
_MIN_BPE_VOCAB = len(SPECIAL_TOKENS) + 256


def _to_str(text):
    if isinstance(text, str):
        return text
    if isinstance(text, (bytes, bytearray)):
        return bytes(text).decode("utf-8")
    raise TypeError(f"`text` must be a str or UTF-8 bytes; got {type(text).__name__}.")


def _check_directory(directory):
    """Returns `directory` if it is a path (str or `os.PathLike`), else raises TypeError."""
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(
            f"`directory` must be a path (str or os.PathLike); got {type(directory).__name__}."
        )
    return directory


def _texts_list(texts):
    """Returns `texts` (a list of str, a `Corpus` or any iterable) as a list of str."""
    if texts is None:
        raise ValueError("`texts` is required to train a tokenizer; got None.")
    if isinstance(texts, (str, bytes)):
        raise ValueError("`texts` must be a list of documents, not a single string.")
    texts = getattr(texts, "texts", texts)  # A `Corpus`.
    texts = [_to_str(text) for text in texts]
    if not any(texts):
        raise ValueError("`texts` holds no text: nothing to train on.")
    return texts


def _write_config(directory, kind, vocab_size, files, special_ids=None):
    config = {
        "format_version": _FORMAT_VERSION,
        "kind": kind,
        "vocab_size": int(vocab_size),
        **(special_ids or {"pad_id": PAD_ID, "bos_id": BOS_ID, "eos_id": EOS_ID}),
        "files": files,
    }
    with open(os.path.join(directory, CONFIG_FILENAME), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
        f.write("\n")


class _KerasHubTokenizer:
    """Shared code of the tokenizers that wrap a keras-hub tokenizer layer."""

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

        text = _to_str(text)
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
        return ids[(ids >= _FIRST_ORDINARY_ID) & (ids < self.vocab_size)]

    def decode(self, ids):
        """Returns the text of `ids`, skipping special ids; bad UTF-8 is replaced."""
        ids = self._ordinary_ids(ids)
        if not ids.size:
            return ""
        return _to_str(self.layer.detokenize([int(i) for i in ids]))

    def __repr__(self):
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


class SentencePieceTokenizer(_KerasHubTokenizer):
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
        if ids != (PAD_ID, BOS_ID, EOS_ID) or processor.unk_id() < _FIRST_ORDINARY_ID:
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
        _write_config(
            directory,
            self.kind,
            self.vocab_size,
            files={"proto": self.model_filename},
        )

    @classmethod
    def _from_config(cls, directory, files):
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

    texts = _texts_list(texts)
    if model_type not in ("unigram", "bpe"):
        raise ValueError(f"`model_type` must be 'unigram' or 'bpe'; got {model_type!r}.")
    if not isinstance(vocab_size, int) or vocab_size < _MIN_SENTENCEPIECE_VOCAB:
        raise ValueError(
            f"`vocab_size` must be an int >= {_MIN_SENTENCEPIECE_VOCAB} for SentencePiece "
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
    settings.update(pad_id=PAD_ID, bos_id=BOS_ID, eos_id=EOS_ID, unk_id=_FIRST_ORDINARY_ID)
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


def _bytes_to_unicode():
    """GPT-2's map of the 256 bytes to printable characters (byte-level BPE)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    byte_values, code_points = printable[:], printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            byte_values.append(b)
            code_points.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(byte_values, code_points)}


class BytePairTokenizer(_KerasHubTokenizer):
    """A byte-level BPE run by `keras_hub.tokenizers.BytePairTokenizer`.

    Like GPT-2's: text is pre-split by a regular expression, each piece's
    UTF-8 bytes are mapped to printable characters and merged by the ranked
    `merges`. All 256 bytes are in the vocabulary, so there is no unknown
    token and every id of ordinary text is >= 3. `<pad>`, `<s>` and `</s>`
    hold ids 0, 1 and 2 and are never produced from text (the text "<s>" is
    encoded as the characters "<", "s", ">").

    `encode` runs the layer's TensorFlow path (`tf_text.regex_split` and a
    `tf.while_loop` of merges), the one `tf.data` runs: keras-hub's eager
    Python path (the Hugging Face `tokenizers` library with a Llama 3 split
    pattern) splits text differently and gives other ids. `decode(encode(text))
    == text` for every text without "६" (U+096C), which that TensorFlow path
    deletes.

    Args:
        vocabulary: dict of token -> id, or the path of its JSON file. Ids
            0, 1, 2 must be `"<pad>"`, `"<s>"`, `"</s>"`; ids must be
            `0..len - 1` and include the 256 byte symbols.
        merges: list of `"a b"` merge rules, best first, or the path of a
            text file with one rule a line.

    Example:
    ```python
    tokenizer = train_bpe(texts, vocab_size=1000)
    ids = tokenizer.encode("print('hi')\\n")
    assert tokenizer.decode(ids) == "print('hi')\\n"
    ```

    References:
        - [Sennrich et al., 2016](https://arxiv.org/abs/1508.07909)
        - [Radford et al., 2019](https://openai.com/research/better-language-models) (GPT-2)
    """

    kind = "bpe"
    vocabulary_filename = "tokenizer_bpe_vocabulary.json"
    merges_filename = "tokenizer_bpe_merges.txt"

    def __init__(self, vocabulary, merges):
        import keras_hub

        if isinstance(vocabulary, (str, os.PathLike)):
            with open(vocabulary, encoding="utf-8") as f:
                vocabulary = json.load(f)
        if not isinstance(vocabulary, dict):
            raise ValueError(
                "`vocabulary` must be a dict of token -> id or the path of its JSON file; "
                f"got {type(vocabulary).__name__}."
            )
        if isinstance(merges, (str, os.PathLike)):
            with open(merges, encoding="utf-8") as f:
                merges = [line.rstrip("\n") for line in f]
        merges = [m for m in merges if m and not m.startswith("#version")]
        vocabulary = {str(token): int(i) for token, i in vocabulary.items()}
        for i, token in enumerate(SPECIAL_TOKENS):
            if vocabulary.get(token) != i:
                raise ValueError(
                    f"`vocabulary` must map {token!r} to id {i} (pad 0, bos 1, eos 2); got "
                    f"{vocabulary.get(token)!r}."
                )
        if sorted(vocabulary.values()) != list(range(len(vocabulary))):
            raise ValueError("`vocabulary` ids must be 0 .. len(vocabulary) - 1, each once.")
        byte_symbols = _bytes_to_unicode()
        missing = [s for s in byte_symbols.values() if s not in vocabulary]
        if missing:
            raise ValueError(
                f"`vocabulary` lacks {len(missing)} of the 256 byte symbols (e.g. "
                f"{missing[0]!r}); a byte-level BPE needs all of them."
            )
        self.vocabulary = vocabulary
        self.merges = merges
        symbol_to_byte = {s: b for b, s in byte_symbols.items()}
        self._token_bytes = [b""] * len(vocabulary)
        for token, i in vocabulary.items():
            if i >= _FIRST_ORDINARY_ID:
                self._token_bytes[i] = bytes(symbol_to_byte[ch] for ch in token)
        # Raises on merges whose parts are not in the vocabulary. No
        # `unsplittable_tokens`: "<s>" in a text is text, not BOS.
        layer = keras_hub.tokenizers.BytePairTokenizer(
            vocabulary=vocabulary, merges=merges, dtype="int32"
        )
        super().__init__(layer, len(vocabulary))

    def decode(self, ids):
        """Returns the text of `ids`, skipping special ids; bad UTF-8 is replaced."""
        data = b"".join(self._token_bytes[i] for i in self._ordinary_ids(ids))
        return data.decode("utf-8", errors="replace")

    def save(self, directory):
        """Writes vocabulary, merges and `tokenizer.json` into `directory`."""
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, self.vocabulary_filename), "w", encoding="utf-8") as f:
            json.dump(self.vocabulary, f, ensure_ascii=False)
        with open(os.path.join(directory, self.merges_filename), "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n")
            for merge in self.merges:
                f.write(f"{merge}\n")
        _write_config(
            directory,
            self.kind,
            self.vocab_size,
            files={"vocabulary": self.vocabulary_filename, "merges": self.merges_filename},
        )

    @classmethod
    def _from_config(cls, directory, files):
        return cls(
            os.path.join(directory, files["vocabulary"]),
            os.path.join(directory, files["merges"]),
        )


def train_bpe(texts, vocab_size, min_frequency=2):
    """Learns a byte-level BPE (vocabulary and merges) on `texts`, offline.

    Uses the Hugging Face `tokenizers` library's `BpeTrainer` with the GPT-2
    `ByteLevel` pre-tokenizer, which splits text like keras-hub's TensorFlow
    path. Ids: `"<pad>"` 0, `"<s>"` 1, `"</s>"` 2, the 256 byte symbols next,
    then one token per merge. `vocab_size` is a maximum: merging stops early
    when no pair of symbols is seen `min_frequency` times (read the result's
    `vocab_size`).

    Args:
        texts: list of str (the documents), or a `Corpus`.
        vocab_size: int >= 259. Maximum vocabulary size, special ids included.
        min_frequency: int. Fewest occurrences of a pair to merge it.

    Returns:
        A `BytePairTokenizer`.

    Example:
    ```python
    corpus = python_source_corpus("train", max_documents=50)
    tokenizer = train_bpe(corpus.texts, vocab_size=1000)
    assert tokenizer.vocab_size == 1000
    ```

    References:
        - [Sennrich et al., 2016](https://arxiv.org/abs/1508.07909)
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    texts = _texts_list(texts)
    if not isinstance(vocab_size, int) or vocab_size < _MIN_BPE_VOCAB:
        raise ValueError(
            f"`vocab_size` must be an int >= {_MIN_BPE_VOCAB} for byte-level BPE (3 special "
            f"tokens and 256 bytes); got {vocab_size!r}."
        )
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    model = json.loads(tokenizer.to_str())["model"]
    # `tokenizers` >= 0.20 stores merges as pairs, older versions as "a b".
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return BytePairTokenizer(model["vocab"], merges)


class HubTokenizer(_KerasHubTokenizer):
    """A pretrained keras-hub tokenizer (OPT's, GPT-2's, ...), kept with its ids.

    The tokenizer of a keras-hub preset, for models whose embedding is
    warm-started from that preset's backbone (`warm_start_embedding`): the
    ids must be the backbone's. Its special ids are the tokenizer's own
    (`keras_memory.data.special_token_ids`; OPT: pad 1, bos and eos 2), not
    0/1/2, so pass them on: `SegmentStream(..., **tokenizer.special_ids)`
    and `MemoryLM(..., pad_token_id=tokenizer.pad_id)`.

    Args:
        preset: a keras-hub preset name (e.g. `"opt_125m_en"`; downloads it
            once), a preset directory, or a `keras_hub.tokenizers.Tokenizer`.

    Example:
    ```python
    tokenizer = HubTokenizer("opt_125m_en")
    ids = tokenizer.encode("Long documents need memory.")
    stream = SegmentStream([ids], 1, 2048, **tokenizer.special_ids)
    ```
    """

    kind = "hub"
    preset_dirname = "tokenizer_hub_preset"

    def __init__(self, preset):
        import keras_hub

        from keras_memory.data.streaming import special_token_ids

        if isinstance(preset, (str, os.PathLike)):
            layer = keras_hub.tokenizers.Tokenizer.from_preset(str(preset))
        elif isinstance(preset, keras_hub.tokenizers.Tokenizer):
            layer = preset
        else:
            raise ValueError(
                "`preset` must be a keras-hub preset name or directory or a "
                f"keras_hub.tokenizers.Tokenizer; got {type(preset).__name__}."
            )
        ids = special_token_ids(layer)
        self.pad_id, self.bos_id, self.eos_id = ids["pad_id"], ids["bos_id"], ids["eos_id"]
        self._special = set(getattr(layer, "special_token_ids", ())) | set(ids.values())
        super().__init__(layer, layer.vocabulary_size())

    def _ordinary_ids(self, ids):
        ids = np.asarray(ids).reshape(-1).astype(np.int64)
        keep = (ids >= 0) & (ids < self.vocab_size) & ~np.isin(ids, list(self._special))
        return ids[keep]

    def save(self, directory):
        """Writes the keras-hub preset and `tokenizer.json` into `directory`."""
        os.makedirs(directory, exist_ok=True)
        self.layer.save_to_preset(os.path.join(directory, self.preset_dirname))
        _write_config(
            directory,
            self.kind,
            self.vocab_size,
            files={"preset": self.preset_dirname},
            special_ids={"pad_id": self.pad_id, "bos_id": self.bos_id, "eos_id": self.eos_id},
        )

    @classmethod
    def _from_config(cls, directory, files):
        import keras

        # A tokenizer saved alone lacks the config.json that
        # `Tokenizer.from_preset` looks for; load it the way keras-hub's
        # preset loader does: its config, then its assets.
        path = os.path.join(directory, files["preset"])
        with open(os.path.join(path, "tokenizer.json"), encoding="utf-8") as f:
            layer = keras.saving.deserialize_keras_object(json.load(f))
        layer.load_preset_assets(path)
        return cls(layer)


_CLASSES = {
    "sentencepiece": SentencePieceTokenizer,
    "bpe": BytePairTokenizer,
    "hub": HubTokenizer,
}


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
        _check_directory(directory)
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


def save_tokenizer(tokenizer, directory):
    """Saves any tokenizer of `keras_memory.data` to `directory`."""
    if hasattr(tokenizer, "save"):
        tokenizer.save(directory)
    else:
        raise ValueError(
            f"`tokenizer` must be a tokenizer of keras_memory.data; got {type(tokenizer).__name__}."
        )


def load_tokenizer(directory):
    """Restores the tokenizer saved in `directory` by `save` or `make_tokenizer`.

    Args:
        directory: str. Folder holding `tokenizer.json` and its files.

    Returns:
        A `ByteTokenizer`, `SentencePieceTokenizer` or `BytePairTokenizer`
        whose encodings equal the saved one's.

    Raises:
        FileNotFoundError: `directory` has no `tokenizer.json`.
        ValueError: the file names an unknown kind, or the restored
            vocabulary size differs from the recorded one.

    Example:
    ```python
    make_tokenizer("bytes", directory="workdir")
    tokenizer = load_tokenizer("workdir")
    ```
    """
    path = os.path.join(_check_directory(directory), CONFIG_FILENAME)
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
    kind = config.get("kind")
    if kind in _CLASSES and not isinstance(config.get("files"), dict):
        raise ValueError(
            f"`directory` {directory!r}: {CONFIG_FILENAME} of a {kind!r} tokenizer needs a "
            f"'files' object naming its files; got {config.get('files')!r}."
        )
    if kind == "bytes":
        tokenizer = ByteTokenizer()
    elif kind in _CLASSES:
        tokenizer = _CLASSES[kind]._from_config(directory, config["files"])
    else:
        raise ValueError(
            f"`directory` {directory!r}: {path} names tokenizer kind {kind!r}; expected one of "
            f"{', '.join(TOKENIZER_KINDS)}."
        )
    if config.get("vocab_size", tokenizer.vocab_size) != tokenizer.vocab_size:
        raise ValueError(
            f"{path} records vocab_size={config['vocab_size']} but its files give "
            f"{tokenizer.vocab_size}."
        )
    return tokenizer


def tokenize_in_tf_data(tokenizer, texts, num_parallel_calls=None):
    """Tokenizes `texts` in a `tf.data` pipeline (TensorFlow Text ops for subwords).

    A `tf.data.Dataset` of the texts is mapped through `tokenizer.tf_tokenize`:
    the keras-hub tokenizer layer for `"sentencepiece"` and `"bpe"`, or
    `tf.io.decode_raw` for bytes. The ids equal `tokenizer.encode(text)` for
    every text, on every Keras backend.

    Args:
        tokenizer: a tokenizer of this module, or a `ByteTokenizer`.
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

    texts = [_to_str(t) for t in getattr(texts, "texts", texts)]
    if not texts:
        return []
    if isinstance(tokenizer, _KerasHubTokenizer):
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
