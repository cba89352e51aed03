"""A decoder language model over segments of long documents."""

import json
import math
import os

import keras
from keras import ops

from keras_memory.backend import accumulating_matmul
from keras_memory.layers.accumulating_dense import AccumulatingDense
from keras_memory.layers.memory_layer import MemoryLayer
from keras_memory.memories.lswt.simctg import simctg_contrastive_loss
from keras_memory.memories.registry import all_option_names, get_kind, make_blocks, stack_runner
from keras_memory.models.block_decoding import BlockDecoding
from keras_memory.models.presets import PRESETS
from keras_memory.models.rebuild import rebuild_model
from keras_memory.models.segment_lm import SegmentLM
from keras_memory.ops.checks import check_bool, check_int, check_number, static_shape
from keras_memory.version import __version__

# The model file inside a directory written by `save_to_preset`.
PRESET_MODEL_FILE = "model.keras"

# Preset keys that describe the data, not the model.
_DATA_KEYS = ("segment_length",)


@keras.saving.register_keras_serializable(package="keras_memory")
class MemoryLM(BlockDecoding, SegmentLM):
    """Decoder LM: tied embedding, a stack of memory blocks, final RMS norm.

    The model reads one segment of a long document per call. Its input is a
    dict `{"tokens": (batch, S) int, "reset": (batch,) bool}` (or just the
    tokens, meaning no row starts a document); `reset[b]` is True on the
    first segment of a document in row `b`. Logits are
    `h @ embedding.T / sqrt(hidden_dim)` (meliad's tied output), in float32.

    The blocks are pluggable: any list of layers that follow the
    memory-state contract (`keras_memory.layers.MemoryLayer`) with a common
    `stateful` flag. With stateful blocks the model keeps every block's
    memory in variables and `model.fit` over an in-order stream of segments
    carries it; otherwise `model(inputs, state=state)` returns
    `(logits, new_state)` with the state a list of per-block dicts.

    `compile()` defaults to AdamW and a cross-entropy that ignores
    `pad_token_id` targets, so padding never counts in the loss.

    Args:
        vocab_size: int. Vocabulary size.
        hidden_dim: int. Model width.
        blocks: list of `MemoryLayer` blocks (e.g. from `make_blocks`).
        pad_token_id: int. Target id masked out of the loss. Defaults to 0.
        contrastive_margin: float or None. With a margin, training adds
            SimCTG's contrastive loss over the final hidden states
            (`keras_memory.losses.simctg_contrastive_loss`, padding masked)
            to the compiled loss, times `contrastive_weight`; 0.5 in SimCTG
            and the LSW Transformer. Defaults to None (off).
        contrastive_weight: float. Weight of the contrastive term.
        embedding_dim: int or None. Width of the word embedding when it
            differs from `hidden_dim` (LSWT): the embedding is projected in
            (`Dense` + RMS norm) and the final hidden state projected back
            out, the logits still tied to the embedding. None: the embedding
            is `hidden_dim` wide and used directly.
        freeze_embedding: bool. Keep the word embedding (and so the tied
            output) fixed in training, as LSWT does with its warm-started
            OPT embedding. Defaults to False.
        dropout: float. Dropout on the embeddings. Defaults to 0.
        epsilon: float. Final RMS norm epsilon. Defaults to 1e-6.
        **kwargs: `keras.Model` keyword arguments (`name`, `dtype`).

    Call arguments:
        inputs: dict with `"tokens"` `(batch, S)` and `"reset"` `(batch,)`,
            or a `(batch, S)` token tensor.
        state: list of per-block state dicts or None (functional form only);
            None starts every row fresh.
        training: bool or None.

    Returns:
        Functional form: `(logits, new_state)`; stateful form: `logits`,
        with logits `(batch, S, vocab_size)` float32.

    Example:
    ```python
    model = keras_memory.models.MemoryLM.from_preset("tiny", kind="xl")
    tokens = np.random.randint(3, 259, size=(2, 128))
    logits, state = model({"tokens": tokens, "reset": np.array([True, True])})
    logits, state = model(
        {"tokens": tokens, "reset": np.array([False, False])}, state=state
    )
    ```

    References:
        - [Dai et al., 2019](https://arxiv.org/abs/1901.02860)
        - [meliad](https://github.com/google-research/meliad)
    """

    def __init__(
        self,
        vocab_size,
        hidden_dim,
        blocks,
        pad_token_id=0,
        dropout=0.0,
        epsilon=1e-6,
        contrastive_margin=None,
        contrastive_weight=1.0,
        embedding_dim=None,
        freeze_embedding=False,
        **kwargs,
    ):
        blocks = [
            keras.saving.deserialize_keras_object(b) if isinstance(b, dict) else b for b in blocks
        ]
        if not blocks or not all(isinstance(b, MemoryLayer) for b in blocks):
            raise ValueError(
                "`blocks` must be a non-empty list of keras_memory MemoryLayer "
                "blocks (see keras_memory.models.make_blocks)."
            )
        flags = {b.stateful for b in blocks}
        if len(flags) != 1:
            raise ValueError("All `blocks` must share one `stateful` flag.")
        super().__init__(**kwargs)
        self.vocab_size = check_int("vocab_size", vocab_size)
        self.hidden_dim = check_int("hidden_dim", hidden_dim)
        self.pad_token_id = check_int("pad_token_id", pad_token_id, 0)
        if self.pad_token_id >= self.vocab_size:
            raise ValueError(
                f"`pad_token_id` ({pad_token_id}) must be < `vocab_size` ({vocab_size})."
            )
        self.dropout = check_number("dropout", dropout, 0.0, 1.0)
        self.epsilon = check_number("epsilon", epsilon, 0.0, exclusive_minimum=True)
        if contrastive_margin is not None and (
            isinstance(contrastive_margin, bool)
            or not isinstance(contrastive_margin, (int, float))
            or not 0.0 < contrastive_margin <= 2.0
        ):
            raise ValueError(
                f"`contrastive_margin` must be in (0, 2] or None; got {contrastive_margin!r}."
            )
        self.contrastive_margin = contrastive_margin
        self.contrastive_weight = check_number("contrastive_weight", contrastive_weight, 0.0)
        self.embedding_dim = check_int("embedding_dim", embedding_dim, allow_none=True)
        freeze_embedding = check_bool("freeze_embedding", freeze_embedding)
        self.stateful = flags.pop()
        self.token_embedding = keras.layers.Embedding(
            vocab_size,
            embedding_dim or hidden_dim,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0),
            dtype=self.dtype_policy,
            name="token_embedding",
        )
        self.token_embedding.trainable = not freeze_embedding
        self.embedding_dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy)
        self.final_norm = keras.layers.RMSNormalization(
            epsilon=epsilon, dtype=self.dtype_policy, name="final_norm"
        )
        if embedding_dim is not None:
            dense = dict(use_bias=False, dtype=self.dtype_policy)
            self.input_projection = AccumulatingDense(hidden_dim, name="input_projection", **dense)
            self.input_norm = keras.layers.RMSNormalization(
                epsilon=epsilon, dtype=self.dtype_policy, name="input_norm"
            )
            self.output_projection = AccumulatingDense(
                embedding_dim, name="output_projection", **dense
            )
        self.blocks = blocks
        # How the blocks run over a segment: layer by layer, unless their kind
        # needs otherwise (Block-Recurrent feedback runs window by window).
        self.stack_runner = stack_runner(blocks)

    @classmethod
    def from_preset(cls, preset, kind="xl", stateful=False, dtype=None, **overrides):
        """Builds a model from a preset in `keras_memory.models.PRESETS`, or
        loads one saved with `save_to_preset`.

        Args:
            preset: str. Preset name (see `keras_memory.models.PRESETS`), or
                a directory written by `save_to_preset` (its trained model;
                `stateful` and `memory_size` may then differ from the saved
                ones, nothing else).
            kind: str. Memory kind, one of `keras_memory.memories.kind_names()`;
                the kind picks the model class (`"melodi"` returns a
                `MelodiLM`). A preset's options of other kinds are left out.
            stateful: bool. Keep memory in variables for `model.fit`.
            dtype: dtype policy, e.g. `"mixed_bfloat16"`.
            **overrides: any preset key (`vocab_size`, `window_length`, ...)
                or block option (`dropout`, `include_self`, ...).
        """
        if isinstance(preset, str) and os.path.isfile(os.path.join(preset, PRESET_MODEL_FILE)):
            return _load_saved_preset(preset, stateful, **overrides)
        if not isinstance(preset, str) or preset not in PRESETS:
            raise ValueError(
                f"Unknown preset {preset!r}: not one of {sorted(PRESETS)} nor a directory "
                f"holding a saved {PRESET_MODEL_FILE}."
            )
        spec = get_kind(kind)
        preset_config = dict(PRESETS[preset])
        # A preset sizes every kind: other kinds' options in it are not this one's.
        for key in all_option_names() - set(spec.option_names()):
            preset_config.pop(key, None)
        config = {**preset_config, **overrides}
        for key in _DATA_KEYS:
            config.pop(key, None)
        vocab_size = config.pop("vocab_size")
        hidden_dim = config.pop("hidden_dim")
        pad_token_id = config.pop("pad_token_id", 0)
        model_options = {
            key: config.pop(key)
            for key in (
                "contrastive_margin",
                "contrastive_weight",
                "embedding_dim",
                "freeze_embedding",
            )
            if key in config
        }
        blocks = make_blocks(kind, stateful=stateful, dtype=dtype, **config)
        # The kind names the class that runs its blocks (Melodi's adds summary tokens).
        model_class = keras.saving.get_registered_object(spec.model_class)
        if not isinstance(model_class, type):
            raise ValueError(
                f"Kind {kind!r} names the model class {spec.model_class!r}, which is not a "
                "registered Keras class (keras.saving.register_keras_serializable)."
            )
        if not issubclass(cls, model_class):
            cls = model_class
        return cls(
            vocab_size=vocab_size,
            hidden_dim=hidden_dim,
            blocks=blocks,
            pad_token_id=pad_token_id,
            dropout=config.get("dropout", 0.0),
            **model_options,
            dtype=dtype,
            name=f"{kind}_lm",
        )

    def build_embedding(self, token_shape):
        """Builds the embedding and, with `embedding_dim`, its projections."""
        self.token_embedding.build(token_shape)
        if self.embedding_dim is not None:
            self.input_projection.build((*token_shape, self.embedding_dim))
            self.input_norm.build((*token_shape, self.hidden_dim))
            self.output_projection.build((*token_shape, self.hidden_dim))

    def embed(self, tokens, training=None):
        """Token ids to `(batch, S, hidden_dim)` stack inputs."""
        x = self.token_embedding(tokens)
        if self.embedding_dim is not None:
            x = self.input_norm(self.input_projection(x))
        return self.embedding_dropout(x, training=training)

    def tied_logits(self, hidden):
        """Float32 logits from final-normed hidden states, tied to the embedding."""
        if self.embedding_dim is not None:
            hidden = self.output_projection(hidden)
        embeddings = ops.cast(self.token_embedding.embeddings, hidden.dtype)
        logits = accumulating_matmul(hidden, ops.transpose(embeddings))
        return ops.cast(logits, "float32") / math.sqrt(embeddings.shape[-1])

    def save_to_preset(self, directory):
        """Saves the model where `from_preset(directory)` loads it back.

        Writes `model.keras` (weights, config and, for a stateful model, the
        memory) and `metadata.json` (class, vocabulary and library version).
        """
        os.makedirs(directory, exist_ok=True)
        self.save(os.path.join(directory, PRESET_MODEL_FILE))
        metadata = {
            "class": type(self).__name__,
            "vocab_size": self.vocab_size,
            "keras_memory_version": __version__,
        }
        with open(os.path.join(directory, "metadata.json"), "w") as f:
            json.dump(metadata, f, indent=2)

    def build(self, input_shape):
        token_shape = input_shape["tokens"] if isinstance(input_shape, dict) else input_shape
        self.build_embedding(token_shape)
        hidden_shape = (*token_shape, self.hidden_dim)
        for block in self.blocks:
            if not block.built:
                block.build(hidden_shape)
        self.final_norm.build(hidden_shape)
        self.built = True

    def initial_state(self, batch_size):
        """Returns the list of per-block states a fresh batch starts from."""
        return [block.initial_state(batch_size) for block in self.blocks]

    def reset_state(self):
        """Clears the memory of every row of a stateful model."""
        for block in self.blocks:
            block.reset_state()

    def call(self, inputs, state=None, training=None):
        tokens, reset = self.unpack_inputs(inputs, state)
        self.check_stack_inputs(tokens, state)
        x = self.embed(tokens, training=training)
        x, new_state = self.call_stack(x, state, reset, training)
        x = self.final_norm(x)
        if training and self.contrastive_margin is not None:
            real = ops.not_equal(tokens, self.pad_token_id)
            self.add_loss(
                self.contrastive_weight
                * simctg_contrastive_loss(x, real, margin=self.contrastive_margin)
            )
        logits = self.tied_logits(x)
        return logits if self.stateful else (logits, new_state)

    def check_stack_inputs(self, tokens, state=None):
        """Checks, before any block runs, that every block can read this call.

        A block that cannot read the segment (its length, batch size or
        `state`) raises here, before an earlier block has written its memory:
        a failed call leaves a stateful model's memory as it was. Only
        static shapes are read.

        Args:
            tokens: the `(batch, S)` token tensor.
            state: the call's `state` (functional form) or None.
        """
        batch, length = static_shape(tokens)
        if not self.stateful and state is not None:
            if not isinstance(state, (list, tuple)) or len(state) != len(self.blocks):
                got = len(state) if isinstance(state, (list, tuple)) else type(state).__name__
                raise ValueError(
                    f"`state` must be a list of {len(self.blocks)} per-block states; got {got}."
                )
            for block, block_state in zip(self.blocks, state):
                if block_state is not None:  # None: the block starts fresh
                    block.check_state(block_state, batch)
        for block in self.blocks:
            block.check_input_shape(self.block_input_shape(block, batch, length))

    def block_input_shape(self, block, batch, length):
        """The static shape of what `block` reads in a call on `(batch, length)` tokens."""
        return (batch, self.stack_runner.block_input_length(length), self.hidden_dim)

    def call_stack(self, x, state, reset, training):
        """Runs the blocks on embedded tokens; returns `(hidden, new_state)`."""
        return self.stack_runner(self.blocks, x, state, reset, training, self.stateful)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocab_size": self.vocab_size,
                "hidden_dim": self.hidden_dim,
                "blocks": [keras.saving.serialize_keras_object(b) for b in self.blocks],
                "pad_token_id": self.pad_token_id,
                "dropout": self.dropout,
                "epsilon": self.epsilon,
                "contrastive_margin": self.contrastive_margin,
                "contrastive_weight": self.contrastive_weight,
                "embedding_dim": self.embedding_dim,
                # Sub-layers' `trainable` is not saved; the model's config carries it.
                "freeze_embedding": not self.token_embedding.trainable,
            }
        )
        return config


def _load_saved_preset(directory, stateful, **overrides):
    unknown = set(overrides) - {"memory_size"}
    if unknown:
        raise ValueError(
            f"A saved preset ({directory}) is a trained model: only `stateful` and "
            f"`memory_size` can change; got {sorted(unknown)}."
        )
    model = keras.saving.load_model(os.path.join(directory, PRESET_MODEL_FILE))
    return rebuild_model(model, stateful=stateful, memory_size=overrides.get("memory_size"))
