"""Byte-level BPE: `BytePairTokenizer` and its offline trainer `train_bpe`.

What round-trips (`decode(encode(text)) == text`): every str without the
character "६" (U+096C, DEVANAGARI DIGIT SIX), which keras-hub's TensorFlow
pre-tokenizer uses as an internal marker and deletes from the input.
"""

import json
import os

from keras_memory.data.tokenizers.config_file import write_config
from keras_memory.data.tokenizers.keras_hub_tokenizer import FIRST_ORDINARY_ID, KerasHubTokenizer
from keras_memory.data.tokenizers.texts import texts_list

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>")
# Special tokens and the 256 byte symbols of a byte-level BPE.
MIN_BPE_VOCAB = len(SPECIAL_TOKENS) + 256


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


class BytePairTokenizer(KerasHubTokenizer):
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
            if i >= FIRST_ORDINARY_ID:
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
        write_config(
            directory,
            self,
            files={"vocabulary": self.vocabulary_filename, "merges": self.merges_filename},
        )

    @classmethod
    def from_files(cls, directory, files):
        """Restores the tokenizer `save` wrote: `files` is its `tokenizer.json` entry."""
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

    texts = texts_list(texts)
    if not isinstance(vocab_size, int) or vocab_size < MIN_BPE_VOCAB:
        raise ValueError(
            f"`vocab_size` must be an int >= {MIN_BPE_VOCAB} for byte-level BPE (3 special "
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
