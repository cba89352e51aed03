"""Pretrained keras-hub tokenizers: `HubTokenizer` and their special ids.

A keras-hub preset's tokenizer keeps its own ids (those of the backbone a
model is warm-started from) and its own special tokens, which need not be
`ByteTokenizer`'s 0/1/2: `special_token_ids` reads them.
"""

import json
import os

import numpy as np

from keras_memory.data.tokenizers.config_file import write_config
from keras_memory.data.tokenizers.keras_hub_tokenizer import KerasHubTokenizer


def special_token_ids(tokenizer):
    """`SegmentStream`'s `bos_id`, `eos_id` and `pad_id` for a keras-hub tokenizer.

    BOS and EOS are the tokenizer's `start_token_id` and `end_token_id`
    (GPT-2: both `<|endoftext|>`, 50256, the separator it was trained with;
    OPT: both `</s>`, 2). Padding is `pad_token_id` only where that is one of
    the tokenizer's special tokens (OPT: `<pad>`, 1): keras-hub's GPT-2
    tokenizer reports `pad_token_id = 0`, the ordinary token "!", and padding
    with it would drop every "!" from the loss. GPT-2 has no padding token,
    so it pads with `<|endoftext|>`; the loss then ignores the EOS target
    too, one token per document, and keeps every real token.

    Args:
        tokenizer: a keras-hub tokenizer with `end_token_id`.

    Returns:
        `{"bos_id": int, "eos_id": int, "pad_id": int}`.
    """
    eos = getattr(tokenizer, "end_token_id", None)
    if eos is None:
        raise ValueError(
            f"`tokenizer` ({type(tokenizer).__name__}) has no end_token_id to separate documents."
        )
    bos = getattr(tokenizer, "start_token_id", None)
    bos = eos if bos is None else bos
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None or pad not in getattr(tokenizer, "special_token_ids", ()):
        pad = eos
    return {"bos_id": int(bos), "eos_id": int(eos), "pad_id": int(pad)}


class HubTokenizer(KerasHubTokenizer):
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
        write_config(directory, self, files={"preset": self.preset_dirname})

    @classmethod
    def from_files(cls, directory, files):
        """Restores the tokenizer `save` wrote: `files` is its `tokenizer.json` entry."""
        import keras

        # A tokenizer saved alone lacks the config.json that
        # `Tokenizer.from_preset` looks for; load it the way keras-hub's
        # preset loader does: its config, then its assets.
        path = os.path.join(directory, files["preset"])
        with open(os.path.join(path, "tokenizer.json"), encoding="utf-8") as f:
            layer = keras.saving.deserialize_keras_object(json.load(f))
        layer.load_preset_assets(path)
        return cls(layer)
