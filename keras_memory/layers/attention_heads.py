"""What every attention layer has: its heads' projections and their scale."""

import keras
from keras import ops

from keras_memory.layers.accumulating_dense import AccumulatingDense
from keras_memory.layers.memory_layer import MemoryLayer
from keras_memory.ops.checks import check_bool, check_initializer, check_int
from keras_memory.ops.normalization import l2_normalize


class AttentionHeads(MemoryLayer):
    """Base of the attention layers: multi-head Q/K/V and output projections.

    Holds what `XLAttention`, `KNNAttention`, `DenseKVAttention` and
    `BlockRecurrentAttention` share, and nothing they would have to switch
    off: one bias-free projection `qkv_projection` of the input to queries
    of `num_heads` heads of `head_dim` and keys and values of
    `num_key_value_heads` heads (grouped-query attention: `num_heads /
    num_key_value_heads` query heads share each key/value head, and every
    cache or memory of keys holds that many heads), one bias-free
    `output_projection` back to the input width, and how queries meet keys.
    With `normalize_keys=True` (meliad's default) queries and keys are
    L2-normalised and the logits multiplied by a learned per-head scale
    `|s|` (`attention_scale`, initialised to 1); otherwise the queries are
    scaled by `1/sqrt(head_dim)`. Everything else (windows, caches, memories)
    a subclass composes from its own pieces.

    A subclass calls `build_heads(input_shape)` from its `build`, where its
    variable order wants the projections and the scale, and implements the
    memory-state contract of `MemoryLayer` (`state_shapes`,
    `call_with_state`).

    Args:
        num_heads: int. Number of attention heads.
        head_dim: int. Size of each head.
        num_key_value_heads: int or None. Heads of the keys and values,
            dividing `num_heads`: 1 is multi-query attention (as the PyTorch
            ports of the Block-Recurrent and Memorizing Transformers use),
            None (the default) one per query head.
        normalize_keys: bool. L2-normalise queries and keys, with a learned
            per-head scale. Defaults to True.
        kernel_initializer: initializer of the projections. Defaults to
            `"glorot_uniform"`.
        stateful: bool. Keep the state in variables (see `MemoryLayer`).
        **kwargs: base layer keyword arguments such as `name` and `dtype`.

    Call arguments:
        See `MemoryLayer`.

    Returns:
        See `MemoryLayer`.

    Example:
    ```python
    class GlobalAttention(AttentionHeads):
        def build(self, input_shape):
            self.build_heads(input_shape)
            self.built = True

        def call_with_state(self, x, state, reset, training):
            queries, keys, values = self.project_qkv(x)
            attended = keras_memory.ops.attention.dense_attention(
                queries, keys, values, self.logit_scale(self.attention_scale)
            )
            return self.project_output(attended), state
    ```

    References:
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762)
        - [Henry et al., 2020 (query-key normalisation)](https://arxiv.org/abs/2010.04245)
    """

    # Whether the layer attends to a recurrent state written by another layer
    # (meliad's feedback); only `XLAttention` can, when built to.
    read_recurrent_state = False

    def __init__(
        self,
        num_heads,
        head_dim,
        normalize_keys=True,
        kernel_initializer="glorot_uniform",
        stateful=False,
        num_key_value_heads=None,
        **kwargs,
    ):
        super().__init__(stateful=stateful, **kwargs)
        self.num_heads = check_int("num_heads", num_heads)
        self.head_dim = check_int("head_dim", head_dim)
        self.num_key_value_heads = check_key_value_heads(num_key_value_heads, self.num_heads)
        self.normalize_keys = check_bool("normalize_keys", normalize_keys)
        self.kernel_initializer = check_initializer("kernel_initializer", kernel_initializer)
        self.hidden_dim = None

    @property
    def inner_dim(self):
        """Width of all heads together: `num_heads * head_dim`."""
        return self.num_heads * self.head_dim

    @property
    def key_value_heads(self):
        """Heads of the keys and values: `num_key_value_heads`, or `num_heads` when None."""
        return self.num_key_value_heads or self.num_heads

    @property
    def key_value_dim(self):
        """Width of the keys (or values) of all heads: `key_value_heads * head_dim`."""
        return self.key_value_heads * self.head_dim

    def projection(self, units, input_shape, name):
        """A built, bias-free `AccumulatingDense` with the layer's kernel initializer.

        Every projection gets its own copy of the initializer, so two
        projections never share a seeded draw.
        """
        layer = AccumulatingDense(
            units,
            use_bias=False,
            kernel_initializer=keras.initializers.get(
                keras.initializers.serialize(self.kernel_initializer)
            ),
            dtype=self.dtype_policy,
            name=name,
        )
        layer.build(input_shape)
        return layer

    def head_scale(self, name):
        """A learned per-head logit scale initialised to 1, or None without `normalize_keys`."""
        if not self.normalize_keys:
            return None
        return self.add_weight(name=name, shape=(self.num_heads,), initializer="ones")

    def build_heads(self, input_shape, attended_width=None):
        """Creates `qkv_projection`, `output_projection` and `attention_scale`.

        Args:
            input_shape: tuple. The shape of `x`, `(batch, segment, hidden_dim)`.
            attended_width: int or None. Width of what `project_output`
                projects; defaults to `num_heads * head_dim` (more when a
                layer concatenates several attentions' heads).
        """
        self.hidden_dim = input_shape[-1]
        self.qkv_projection = self.projection(
            self.inner_dim + 2 * self.key_value_dim, input_shape, "qkv_projection"
        )
        self.output_projection = self.projection(
            self.hidden_dim,
            (*input_shape[:-1], attended_width or self.inner_dim),
            "output_projection",
        )
        self.attention_scale = self.head_scale("attention_scale")

    def split_heads(self, x):
        """`(batch, length, heads * head_dim)` -> `(batch, length, heads, head_dim)`.

        `heads` is what the width holds: `num_heads` for queries,
        `key_value_heads` for keys and values.
        """
        heads = x.shape[-1] // self.head_dim
        return ops.reshape(x, (ops.shape(x)[0], x.shape[1], heads, self.head_dim))

    def scale_queries(self, queries):
        """Queries ready for the logits: L2-normalised, or scaled by `1/sqrt(head_dim)`."""
        if self.normalize_keys:
            return l2_normalize(queries)
        return queries * ops.cast(self.head_dim**-0.5, queries.dtype)

    def logit_scale(self, scale):
        """`|scale|`, the learned logit scale to apply, or None without `normalize_keys`."""
        return ops.abs(scale) if self.normalize_keys else None

    def project_qkv(self, x):
        """Returns queries `(batch, S, num_heads, head_dim)`, keys and values
        `(batch, S, key_value_heads, head_dim)`.

        With `normalize_keys` the queries and keys come back L2-normalised;
        otherwise the queries come back scaled by `1/sqrt(head_dim)`.
        """
        batch, length = ops.shape(x)[0], ops.shape(x)[1]
        qkv = self.qkv_projection(x)
        heads = self.num_heads + 2 * self.key_value_heads
        qkv = ops.reshape(qkv, (batch, length, heads, self.head_dim))
        # [queries | keys | values] along the projection's width, as before
        # grouped queries existed: a model saved then loads unchanged.
        queries = qkv[:, :, : self.num_heads]
        keys = qkv[:, :, self.num_heads : self.num_heads + self.key_value_heads]
        values = qkv[:, :, self.num_heads + self.key_value_heads :]
        if self.normalize_keys:
            return l2_normalize(queries), l2_normalize(keys), values
        return self.scale_queries(queries), keys, values

    def project_output(self, outputs):
        """Merges heads `(batch, S, heads, head_dim)` and applies the output projection."""
        batch, length = ops.shape(outputs)[0], ops.shape(outputs)[1]
        width = outputs.shape[2] * outputs.shape[3]
        return self.output_projection(ops.reshape(outputs, (batch, length, width)))

    def decoding_window_length(self):
        # A layer whose local attention is a `WindowedAttention` (`self.window`) decodes as it.
        window = getattr(self, "window", None)
        return None if window is None else window.decoding_window_length()

    def segment_state_names(self):
        window = getattr(self, "window", None)
        return () if window is None else window.segment_state_names()

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
        config.update(
            {
                "num_heads": self.num_heads,
                "head_dim": self.head_dim,
                "num_key_value_heads": self.num_key_value_heads,
                "normalize_keys": self.normalize_keys,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config


def check_key_value_heads(num_key_value_heads, num_heads):
    """`num_key_value_heads` checked: None, or an int >= 1 dividing `num_heads`.

    Raises:
        ValueError: naming the argument and what it expects.
    """
    value = check_int("num_key_value_heads", num_key_value_heads, allow_none=True)
    if value is not None and num_heads % value:
        raise ValueError(
            f"`num_key_value_heads` must divide `num_heads` ({num_heads}); got {value}."
        )
    return value


def accept_legacy_options(layer_class, config, legacy):
    """`config` without the options an earlier version saved at fixed values.

    Before each attention layer listed its own arguments, `KNNAttention`,
    `BlockRecurrentAttention` and `DenseKVAttention` took (and saved) every
    argument of `XLAttention`, some of them only ever at one value. Their
    `from_config` drops such a key when it holds that value, so `.keras`
    files saved then still load, and refuses any other value.

    Args:
        layer_class: the class being deserialised (for the message).
        config: dict. The saved config.
        legacy: dict. `{key: the only value the earlier version saved}`.

    Returns:
        A new dict.

    Raises:
        ValueError: a legacy key holds another value.
    """
    config = dict(config)
    for key, value in legacy.items():
        if key not in config:
            continue
        saved = config.pop(key)
        if saved != value or type(saved) is not type(value):
            raise ValueError(
                f"{layer_class.__name__} does not take `{key}`: a config saved by an "
                f"earlier version may hold it only at {value!r}; got {saved!r}."
            )
    return config
