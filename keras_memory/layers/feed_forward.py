"""Position-wise feed-forward network."""

import keras
from keras import ops

from keras_memory.layers.accumulating_dense import AccumulatingDense
from keras_memory.ops.checks import (
    check_activation,
    check_initializer,
    check_int,
    check_number,
    require_tensor,
    static_shape,
)

# Gated units: the gate's activation.
GATED_ACTIVATIONS = {"swiglu": "silu", "geglu": "gelu"}


@keras.saving.register_keras_serializable(package="keras_memory")
class FeedForward(keras.layers.Layer):
    """Two bias-free dense layers with an activation between them.

    `activation="swiglu"` (or `"geglu"`) makes it gated, as in LLaMA and the
    LSW Transformer: `W_out(silu(x W_gate) * (x W_in))` (gelu for geglu),
    with one more `hidden_dim x intermediate_dim` kernel.

    Args:
        intermediate_dim: int. Width of the hidden layer.
        activation: str or callable. Activation of the hidden layer, or
            `"swiglu"` / `"geglu"` for a gated unit. Defaults to `"gelu"`.
        dropout: float. Dropout rate on the hidden layer. Defaults to 0.
        kernel_initializer: initializer of both kernels.
        **kwargs: base layer keyword arguments.

    Call arguments:
        x: float tensor `(..., hidden_dim)`.
        training: bool or None.

    Returns:
        A tensor of `x`'s shape.

    Example:
    ```python
    ffn = keras_memory.layers.FeedForward(intermediate_dim=256)
    y = ffn(np.ones((2, 16, 64), "float32"))
    ```
    """

    def __init__(
        self,
        intermediate_dim,
        activation="gelu",
        dropout=0.0,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.intermediate_dim = check_int("intermediate_dim", intermediate_dim)
        check_activation("activation", activation, extra=GATED_ACTIVATIONS)
        self.gated = isinstance(activation, str) and activation in GATED_ACTIVATIONS
        self.activation = activation if self.gated else keras.activations.get(activation)
        self.dropout = check_number("dropout", dropout, 0.0, 1.0)
        self.kernel_initializer = check_initializer("kernel_initializer", kernel_initializer)
        self.hidden_dim = None

    def build(self, input_shape):
        if len(input_shape) < 1:
            raise ValueError(f"`x` must be (..., hidden_dim); got shape {tuple(input_shape)}.")
        self.hidden_dim = hidden_dim = input_shape[-1]
        if self.gated:
            self.gate = AccumulatingDense(
                self.intermediate_dim,
                activation=GATED_ACTIVATIONS[self.activation],
                use_bias=False,
                kernel_initializer=keras.initializers.get(
                    keras.initializers.serialize(self.kernel_initializer)
                ),
                dtype=self.dtype_policy,
                name="gate",
            )
            self.gate.build(input_shape)
        self.intermediate = AccumulatingDense(
            self.intermediate_dim,
            activation=None if self.gated else self.activation,
            use_bias=False,
            kernel_initializer=keras.initializers.get(
                keras.initializers.serialize(self.kernel_initializer)
            ),
            dtype=self.dtype_policy,
            name="intermediate",
        )
        self.intermediate.build(input_shape)
        self.output_dense = AccumulatingDense(
            hidden_dim,
            use_bias=False,
            kernel_initializer=keras.initializers.get(
                keras.initializers.serialize(self.kernel_initializer)
            ),
            dtype=self.dtype_policy,
            name="output",
        )
        self.output_dense.build((*input_shape[:-1], self.intermediate_dim))
        self.hidden_dropout = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.built = True

    def call(self, x, training=None):
        x = require_tensor("x", x)
        shape = static_shape(x)
        if not shape or shape[-1] not in (None, self.hidden_dim):
            raise ValueError(
                f"Layer '{self.name}': `x` must be (..., {self.hidden_dim}); got {shape}."
            )
        # Tokens flattened to one axis: with a (batch, length, dim) input, XLA
        # on the CPU fused the activation's derivative into a transposing copy
        # for the kernel's gradient and evaluated it there slowly (a d512 FFN's
        # training step took 2.2x as long as with the same matmuls in 2-D).
        tokens = ops.reshape(x, (-1, self.hidden_dim))
        h = self.intermediate(tokens)
        if self.gated:
            h = self.gate(tokens) * h
        h = self.hidden_dropout(h, training=training)
        return ops.reshape(self.output_dense(h), ops.shape(x))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "intermediate_dim": self.intermediate_dim,
                "activation": self.activation
                if self.gated
                else keras.activations.serialize(self.activation),
                "dropout": self.dropout,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
