"""Melodi's token mixing: a learned linear map along the sequence axis."""

import keras
from keras import ops

from keras_memory.ops.checks import (
    check_bool,
    check_int,
    check_number,
    check_shape,
    require_tensor,
    static_shape,
)


@keras.saving.register_keras_serializable(package="keras_memory")
class TokenMixing(keras.layers.Layer):
    """Mixes a window's context and summary tokens into `output_size` tokens.

    The tokens `[x, u]` (context then summary, `W + U` of them) are combined
    by one dense map along the sequence axis, the same for every feature:
    `out[:, o] = sum_s K[s, o] * t[:, s] + b[o]`. With
    `use_norm_and_residual` both inputs are RMS-normalised first and the
    summary tokens are added back (`output_size` must then equal `U`):
    Melodi's next summary tokens and, when sizes agree, its next short-term
    memory. Without it the map reads the raw tokens: Melodi's long-term
    memory increment.

    Args:
        output_size: int. Number of tokens produced.
        use_norm_and_residual: bool. Normalise the inputs and add the summary
            tokens to the output. Defaults to True.
        epsilon: float. RMS norm epsilon. Defaults to 1e-6.
        **kwargs: base layer keyword arguments.

    Call arguments:
        context: float tensor `(batch, W, hidden_dim)`.
        summary: float tensor `(batch, U, hidden_dim)`.

    Returns:
        A tensor `(batch, output_size, hidden_dim)`.

    Example:
    ```python
    mixing = keras_memory.layers.TokenMixing(output_size=8)
    out = mixing(np.ones((2, 32, 64), "float32"), np.ones((2, 8, 64), "float32"))
    ```

    References:
        - [Chen et al., 2024 (Melodi)](https://arxiv.org/abs/2410.03156)
        - [meliad, memory2/melodi_memory.py](https://github.com/google-research/meliad)
    """

    def __init__(self, output_size, use_norm_and_residual=True, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.output_size = check_int("output_size", output_size)
        self.use_norm_and_residual = check_bool("use_norm_and_residual", use_norm_and_residual)
        self.epsilon = check_number("epsilon", epsilon, 0.0, exclusive_minimum=True)
        self._sizes = None

    def build(self, context_shape, summary_shape):
        prefix = f"Layer '{self.name}': "
        check_shape("context", context_shape, ("batch", "window", "features"), prefix)
        check_shape("summary", summary_shape, ("batch", "summary", "features"), prefix)
        # (context tokens, summary tokens, features): what the kernel and norms are sized for.
        self._sizes = (context_shape[1], summary_shape[1], context_shape[-1])
        if self.use_norm_and_residual and summary_shape[1] != self.output_size:
            raise ValueError(
                f"TokenMixing with `use_norm_and_residual` needs as many summary tokens "
                f"as `output_size` ({self.output_size}); got {summary_shape[1]}."
            )
        length = context_shape[1] + summary_shape[1]
        if self.use_norm_and_residual:
            self.context_norm = keras.layers.RMSNormalization(
                epsilon=self.epsilon, dtype=self.dtype_policy, name="context_norm"
            )
            self.context_norm.build(context_shape)
            self.summary_norm = keras.layers.RMSNormalization(
                epsilon=self.epsilon, dtype=self.dtype_policy, name="summary_norm"
            )
            self.summary_norm.build(summary_shape)
        # fan_in over the mixed tokens, as meliad's variance scaling.
        self.mixing_kernel = self.add_weight(
            name="mixing_kernel",
            shape=(length, self.output_size),
            initializer=keras.initializers.VarianceScaling(
                1.0, mode="fan_in", distribution="truncated_normal"
            ),
        )
        self.mixing_bias = self.add_weight(
            name="mixing_bias", shape=(self.output_size,), initializer="zeros"
        )
        self.built = True

    def call(self, context, summary):
        self._check_inputs(require_tensor("context", context), require_tensor("summary", summary))
        if self.use_norm_and_residual:
            tokens = ops.concatenate(
                [self.context_norm(context), self.summary_norm(summary)], axis=1
            )
        else:
            tokens = ops.concatenate([context, summary], axis=1)
        kernel = ops.cast(self.mixing_kernel, tokens.dtype)
        mixed = ops.einsum("bsd,so->bod", tokens, kernel)
        mixed = mixed + ops.cast(self.mixing_bias, mixed.dtype)[None, :, None]
        return mixed + summary if self.use_norm_and_residual else mixed

    def _check_inputs(self, context, summary):
        """Static checks: both `(batch, tokens, features)`, sized as at build time."""
        window, size, width = self._sizes
        prefix = f"Layer '{self.name}': "
        # Without the norms, the map is the same for any feature width.
        width = width if self.use_norm_and_residual else "features"
        check_shape("context", context, ("batch", window, width), prefix)
        batch, _, width = static_shape(context)
        check_shape("summary", summary, (batch or "batch", size, width or "features"), prefix)

    def compute_output_shape(self, context_shape, summary_shape):
        return (context_shape[0], self.output_size, context_shape[2])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "output_size": self.output_size,
                "use_norm_and_residual": self.use_norm_and_residual,
                "epsilon": self.epsilon,
            }
        )
        return config
