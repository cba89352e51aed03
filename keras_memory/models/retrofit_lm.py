"""A pretrained keras-hub decoder given a kNN memory layer."""

import inspect

import keras
from keras import ops

from keras_memory.memories.memorizing.kind import default_memory_layer
from keras_memory.memories.memorizing.knn_attention import KNNAttention
from keras_memory.models.segment_lm import SegmentLM


@keras.saving.register_keras_serializable(package="keras_memory")
class RetrofitLM(SegmentLM):
    """A keras-hub GPT-2 or OPT decoder with a kNN memory block inserted.

    After decoder layer `memory_layer` of the backbone the model adds a
    residual memory block, `x + KNNAttention(LayerNorm(x))`: sliding-window
    attention with the Transformer-XL cache plus attention over the
    `num_neighbors` best entries of a memory of the document's past keys and
    values, mixed by the per-head gate (see `KNNAttention`). The block's
    output projection starts at zero, so before fine-tuning the model
    computes exactly what the backbone computes; fine-tuning on long
    documents teaches it to use the memory. Everything else (embeddings,
    decoder layers, final norm, tied output embedding) is the backbone's own
    layers, so its pretrained weights are used as they are.

    The model reads a document one segment at a time, like `MemoryLM`, with
    the same inputs `{"tokens": (batch, S), "reset": (batch,)}` and the same
    functional/stateful forms; each segment restarts the backbone's absolute
    positions at 0 (so `S` must not exceed its `max_sequence_length`), and
    only the memory block sees beyond the segment. Freeze the backbone with
    `model.backbone.trainable = False` to train the memory block alone.

    Args:
        backbone: a `keras_hub.models.GPT2Backbone` or
            `keras_hub.models.OPTBackbone` (or a backbone with their layout:
            `token_embedding` (reversible), `transformer_layers`,
            `layer_norm`, and `position_embedding` or `embeddings`).
        memory_layer: int or None. Index of the decoder layer after which the
            memory block sits; defaults to two thirds up
            (`default_memory_layer`), where the Memorizing Transformer puts
            its memory, and never after the top layer (a 3-layer backbone
            gets it after layer 1).
        memory_size: int. Memory entries per (row, head). Defaults to 8192.
        num_neighbors: int. `k`, entries retrieved per query. Defaults to 32.
        window_length: int. The memory block's local window; the segment
            length must be a multiple of it. Defaults to 128.
        retrieval: str. `KNNAttention` retrieval method. Defaults to
            `"exact"`.
        stateful: bool. Keep the memory in variables for `model.fit`.
        pad_token_id: int. Target id the default loss ignores. Defaults to 0
            (`ByteTokenizer`'s); with a keras-hub vocabulary use its padding
            id (`keras_memory.data.special_token_ids`), which
            `from_preset` does for you.
        **kwargs: `keras.Model` keyword arguments (`name`, `dtype`).

    Call arguments:
        inputs: dict with `"tokens"` `(batch, S)` and `"reset"` `(batch,)`,
            or a `(batch, S)` token tensor.
        state: the memory block's state dict or None (functional form only).
        training: bool or None.

    Returns:
        Functional form: `(logits, new_state)`; stateful form: `logits`,
        with logits `(batch, S, vocabulary_size)` float32.

    Example:
    ```python
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=259, num_layers=3, num_heads=4, hidden_dim=64,
        intermediate_dim=128, max_sequence_length=256,
    )
    model = keras_memory.models.RetrofitLM(
        backbone, memory_size=1024, num_neighbors=8, window_length=32
    )
    logits, state = model({"tokens": np.ones((2, 64), "int32"), "reset": np.ones(2, bool)})
    ```

    References:
        - [Wu et al., 2022, Sec. 4.5 (fine-tuning a pretrained model with memory)](
          https://arxiv.org/abs/2203.08913)
    """

    def __init__(
        self,
        backbone,
        memory_layer=None,
        memory_size=8192,
        num_neighbors=32,
        window_length=128,
        retrieval="exact",
        stateful=False,
        pad_token_id=0,
        **kwargs,
    ):
        if isinstance(backbone, dict):
            backbone = keras.saving.deserialize_keras_object(backbone)
            # A deserialised backbone keeps its `trainable` flag but, on torch,
            # not its weights' (Keras 3.15): setting it again pushes it down.
            backbone.trainable = backbone.trainable
        _check_backbone(backbone)
        num_layers = len(backbone.transformer_layers)
        if memory_layer is None:
            # Below the top layer: a block after the last one would reach the
            # logits through the final norm only, with no layer to read it.
            memory_layer = min(default_memory_layer(num_layers), max(0, num_layers - 2))
        if not isinstance(memory_layer, int) or not 0 <= memory_layer < num_layers:
            raise ValueError(
                f"`memory_layer` must be an int in [0, {num_layers}) for this "
                f"{num_layers}-layer backbone; got {memory_layer!r}."
            )
        if backbone.hidden_dim % backbone.num_heads:
            raise ValueError(
                f"The backbone's hidden_dim ({backbone.hidden_dim}) must be a multiple of "
                f"its num_heads ({backbone.num_heads})."
            )
        super().__init__(**kwargs)
        self.backbone = backbone
        self.memory_layer = memory_layer
        self.memory_size = memory_size
        self.num_neighbors = num_neighbors
        self.window_length = window_length
        self.retrieval = retrieval
        self.stateful = stateful
        self.pad_token_id = pad_token_id
        self.vocab_size = backbone.vocabulary_size
        self.hidden_dim = backbone.hidden_dim
        self.memory_norm = keras.layers.LayerNormalization(
            epsilon=1e-5, dtype=self.dtype_policy, name="memory_norm"
        )
        self.memory_attention = KNNAttention(
            backbone.num_heads,
            backbone.hidden_dim // backbone.num_heads,
            window_length,
            memory_size=memory_size,
            num_neighbors=num_neighbors,
            retrieval=retrieval,
            stateful=stateful,
            dtype=self.dtype_policy,
            name="memory_attention",
        )

    @classmethod
    def from_preset(cls, preset, load_weights=True, pad_token_id=None, **kwargs):
        """Loads a keras-hub backbone preset and inserts the memory block.

        Args:
            preset: str. A keras-hub preset name (`"gpt2_base_en"`,
                `"opt_125m_en"`), a `kaggle://` / `hf://` handle or a local
                preset directory (`backbone.save_to_preset(path)`).
            load_weights: bool. Load the pretrained weights.
            pad_token_id: int or None. The padding id the loss ignores; None
                takes it from the preset's tokenizer
                (`keras_memory.data.special_token_ids`: GPT-2 50256, OPT 1),
                the id to give `SegmentStream` as well.
            **kwargs: `RetrofitLM` arguments (`memory_size`, `stateful`, ...).
        """
        import keras_hub  # imported on use: it pulls in TensorFlow Text

        from keras_memory.data.tokenizers.hub import special_token_ids

        backbone = keras_hub.models.Backbone.from_preset(preset, load_weights=load_weights)
        if pad_token_id is None:
            try:
                tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(preset)
            except Exception as error:
                raise ValueError(
                    f"Could not load a tokenizer from preset {preset!r} to find its padding "
                    "id; pass `pad_token_id`."
                ) from error
            pad_token_id = special_token_ids(tokenizer)["pad_id"]
        return cls(backbone, pad_token_id=pad_token_id, **kwargs)

    def build(self, input_shape):
        token_shape = input_shape["tokens"] if isinstance(input_shape, dict) else input_shape
        hidden_shape = (*token_shape, self.hidden_dim)
        self.memory_norm.build(hidden_shape)
        self.memory_attention.build(hidden_shape)
        # A zero output projection makes the untrained block a no-op: the
        # model starts as the pretrained backbone, whatever the memory holds.
        kernel = self.memory_attention.output_projection.kernel
        kernel.assign(ops.zeros(kernel.shape, kernel.dtype))
        self.built = True

    def initial_state(self, batch_size):
        """Returns the memory block's state for a fresh batch."""
        return self.memory_attention.initial_state(batch_size)

    def reset_state(self):
        """Clears the memory of every row of a stateful model."""
        self.memory_attention.reset_state()

    def call(self, inputs, state=None, training=None):
        tokens, reset = self.unpack_inputs(inputs, state)
        length = tokens.shape[1]
        if length is not None and length > self.backbone.max_sequence_length:
            raise ValueError(
                f"The segment length ({length}) exceeds the backbone's "
                f"max_sequence_length ({self.backbone.max_sequence_length})."
            )
        # Attention is causal, so padding after a document's end cannot reach
        # a real token's logits; the loss ignores the padding targets.
        padding_mask = ops.ones_like(tokens, dtype="int32")
        x = self._embed(tokens, training)
        new_state = None
        for i, layer in enumerate(self.backbone.transformer_layers):
            x = layer(x, decoder_padding_mask=padding_mask, training=training)
            if i == self.memory_layer:
                h = self.memory_norm(x)
                if self.stateful:
                    h = self.memory_attention(h, reset=reset, training=training)
                else:
                    h, new_state = self.memory_attention(
                        h, state=state, reset=reset, training=training
                    )
                x = x + h
        x = self.backbone.layer_norm(x)
        logits = ops.cast(self.backbone.token_embedding(x, reverse=True), "float32")
        return logits if self.stateful else (logits, new_state)

    def _embed(self, tokens, training):
        backbone = self.backbone
        if hasattr(backbone, "position_embedding"):  # GPT-2
            embedded = backbone.token_embedding(tokens)
            x = backbone.embeddings_add((embedded, backbone.position_embedding(embedded)))
            return backbone.embeddings_dropout(x, training=training)
        return backbone.embeddings(tokens)  # OPT: token + position in one layer

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "backbone": keras.saving.serialize_keras_object(self.backbone),
                "memory_layer": self.memory_layer,
                "memory_size": self.memory_size,
                "num_neighbors": self.num_neighbors,
                "window_length": self.window_length,
                "retrieval": self.retrieval,
                "stateful": self.stateful,
                "pad_token_id": self.pad_token_id,
            }
        )
        return config


def _check_backbone(backbone):
    needed = ("token_embedding", "transformer_layers", "layer_norm", "max_sequence_length")
    missing = [name for name in needed if not hasattr(backbone, name)]
    if not (hasattr(backbone, "position_embedding") or hasattr(backbone, "embeddings")):
        missing.append("position_embedding or embeddings")
    if not missing and "reverse" not in inspect.signature(backbone.token_embedding.call).parameters:
        missing.append("a reversible token_embedding")
    if missing:
        raise ValueError(
            "`backbone` must be a keras-hub GPT2Backbone or OPTBackbone (a decoder with "
            "a reversible `token_embedding`, `transformer_layers`, `layer_norm` and "
            f"position embeddings); got {type(backbone).__name__} lacking {missing}."
        )
