"""Pre-norm transformer block around any memory attention layer."""

import keras

from keras_memory.layers.feed_forward import GATED_ACTIVATIONS, FeedForward
from keras_memory.layers.memory_layer import MemoryLayer
from keras_memory.ops.checks import check_activation, check_int, check_number


@keras.saving.register_keras_serializable(package="keras_memory")
class TransformerBlock(MemoryLayer):
    """Pre-norm block: `h = x + attn(norm(x)); y = h + ffn(norm(h))`.

    The attention layer is a constructor argument, so any layer that follows
    the memory-state contract slots in: `XLAttention` (Transformer-XL or
    local-only) here, the kNN, block-recurrent and Melodi layers later. The
    block's state is its attention layer's state and its `stateful` flag is
    the attention layer's.

    Args:
        attention: a `MemoryLayer` (e.g. `XLAttention`). Its `stateful` flag
            decides the block's form.
        intermediate_dim: int. Width of the feed-forward hidden layer.
        activation: str. Feed-forward activation. Defaults to `"gelu"`.
        dropout: float. Dropout on both residual branches. Defaults to 0.
        epsilon: float. RMS norm epsilon. Defaults to 1e-6.
        **kwargs: base layer keyword arguments.

    Call arguments:
        x: float tensor `(batch, S, hidden_dim)`.
        state: dict or None. The attention layer's state (functional form).
        reset: bool tensor `(batch,)` or None. True on a document's first
            segment.
        training: bool or None.
        functional: bool. See `MemoryLayer`: state in, `(y, new_state)` out
            with gradient, no variables touched.
        **call_options: passed to the attention layer (e.g. `recurrent_kv`).

    Returns:
        Functional form: `(y, new_state)`. Stateful form: `y`.

    Example:
    ```python
    block = keras_memory.layers.TransformerBlock(
        attention=keras_memory.layers.XLAttention(4, 16, window_length=32),
        intermediate_dim=256,
    )
    y, state = block(np.ones((2, 64, 64), "float32"))
    ```

    References:
        - [Xiong et al., 2020 (pre-norm)](https://arxiv.org/abs/2002.04745)
    """

    def __init__(
        self,
        attention,
        intermediate_dim,
        activation="gelu",
        dropout=0.0,
        epsilon=1e-6,
        **kwargs,
    ):
        if isinstance(attention, dict):
            attention = keras.saving.deserialize_keras_object(attention)
        if not isinstance(attention, MemoryLayer):
            raise ValueError(
                "`attention` must be a keras_memory MemoryLayer (e.g. XLAttention); "
                f"got {type(attention).__name__}."
            )
        super().__init__(stateful=attention.stateful, **kwargs)
        self.attention = attention
        self.intermediate_dim = check_int("intermediate_dim", intermediate_dim)
        self.activation = check_activation("activation", activation, extra=GATED_ACTIVATIONS)
        self.dropout = check_number("dropout", dropout, 0.0, 1.0)
        self.epsilon = check_number("epsilon", epsilon, 0.0, exclusive_minimum=True)

    def build(self, input_shape):
        self._check_build_shape(input_shape)
        self.attention_norm = keras.layers.RMSNormalization(
            epsilon=self.epsilon, dtype=self.dtype_policy, name="attention_norm"
        )
        self.attention_norm.build(input_shape)
        # A deserialised attention layer arrives already built.
        if not self.attention.built:
            self.attention.build(input_shape)
        self.ffn_norm = keras.layers.RMSNormalization(
            epsilon=self.epsilon, dtype=self.dtype_policy, name="ffn_norm"
        )
        self.ffn_norm.build(input_shape)
        self.ffn = FeedForward(
            self.intermediate_dim,
            activation=self.activation,
            dtype=self.dtype_policy,
            name="ffn",
        )
        self.ffn.build(input_shape)
        self.residual_dropout = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.built = True

    def state_shapes(self, batch_size):
        return self.attention.state_shapes(batch_size)

    def decoding_window_length(self):
        return self.attention.decoding_window_length()

    def segment_state_names(self):
        return self.attention.segment_state_names()

    def input_width(self):
        return self.attention.input_width()

    def check_input_shape(self, shape, functional=False):
        # The attention layer holds the width, the segment rules and the state.
        self.attention.check_input_shape(shape, functional)

    def initial_state(self, batch_size):
        return self.attention.initial_state(batch_size)

    def reset_state(self):
        self.attention.reset_state()

    def read_state(self):
        return self.attention.read_state()

    def write_state(self, state):
        self.attention.write_state(state)

    def call(self, x, state=None, reset=None, training=None, functional=False, **call_options):
        # The attention layer checks and carries the state itself.
        x = self._check_input(x, functional)
        normed = self.attention_norm(x)
        if self.stateful and not functional:
            if state is not None:
                raise ValueError(f"Block '{self.name}' is stateful: do not pass `state`.")
            attended = self.attention(normed, reset=reset, training=training, **call_options)
            new_state = None
        else:
            attended, new_state = self.attention(
                normed,
                state=state,
                reset=reset,
                training=training,
                functional=functional,
                **call_options,
            )
        h = x + self.residual_dropout(attended, training=training)
        y = h + self.residual_dropout(
            self.ffn(self.ffn_norm(h), training=training), training=training
        )
        return y if self.stateful and not functional else (y, new_state)

    def step_buffers(self, state, batch_size, segment_length):
        return self.attention.step_buffers(state, batch_size, segment_length)

    def next_window_buffers(self, buffers, state, previous_valid):
        return self.attention.next_window_buffers(buffers, state, previous_valid)

    def decode_step(self, x, position, buffers, state, previous_valid):
        """One token through the block, its attention reading the step buffers."""
        attended, buffers = self.attention.decode_step(
            self.attention_norm(x), position, buffers, state, previous_valid
        )
        h = x + attended
        return h + self.ffn(self.ffn_norm(h)), buffers

    def compute_output_shape(self, input_shape=None, **shapes):
        # Keras passes the input's shape as `input_shape` or `x_shape`
        # depending on whether the layer was built by a call or by build().
        shape = input_shape if input_shape is not None else shapes["x_shape"]
        # Symbolic calls (keras.Input) reach here instead of `call`: check the
        # static shape the same way (not the batch: `functional` is unknown here).
        self.check_input_shape(shape, functional=True)
        return shape

    def get_config(self):
        config = super().get_config()
        config.pop("stateful")
        config.update(
            {
                "attention": keras.saving.serialize_keras_object(self.attention),
                "intermediate_dim": self.intermediate_dim,
                "activation": self.activation,
                "dropout": self.dropout,
                "epsilon": self.epsilon,
            }
        )
        return config
