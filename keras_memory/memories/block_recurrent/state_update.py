"""How the Block-Recurrent state takes in what it attended to: gates and variants."""

import keras
from keras import ops

from keras_memory.layers.accumulating_dense import AccumulatingDense
from keras_memory.memories.block_recurrent.state_choices import GATES as GATES
from keras_memory.memories.block_recurrent.state_choices import VARIANTS as VARIANTS


class StateUpdate:
    """The gated update of the recurrent state after each block.

    A piece `BlockRecurrentAttention` composes. From `c`, the state entering
    a block, and `y`, its self- and cross-attention outputs concatenated over
    heads, it computes the state of the next block. Gates (`gate`):
    `"fixed"` keeps `c * g + u * (1 - g)` with `g = sigmoid(b)`, `b ~ N(0,
    0.1)` per feature; `"lstm"` keeps `c * f + u * i` with `f = sigmoid(W_f y
    + b_f + 1)` and `i = sigmoid(W_i y + b_i - 1)`. Variants (`variant`):
    `"skip"` proposes `u = W y` (no feed-forward on the state path); `"dual"`
    then adds a pre-norm feed-forward, gated the same way; `"single"`
    replaces the projection and its gate by one gated feed-forward (tanh
    output) on `y`.

    Its weights belong to the layer that owns it (`build` creates them there
    and returns them by the names the layer keeps them under).

    Args:
        gate: str. `"fixed"` or `"lstm"`.
        variant: str. `"skip"`, `"dual"` or `"single"`.
        num_states: int. State vectors `N`.
        intermediate_dim: int or None. Hidden width of the state's
            feed-forward (`"dual"` / `"single"`); None: 4x the state width.

    Call arguments:
        recurrent: float32 tensor `(batch, N, hidden_dim)`, the state `c`.
        own: float tensor `(batch, N, heads, head_dim)`, the state's
            attention over itself.
        read: float tensor like `own`, its attention over the block's tokens.
        compute_dtype: the layer's compute dtype (what the projections read).

    Returns:
        The next state, float32 `(batch, N, hidden_dim)`.

    Example:
    ```python
    update = StateUpdate("fixed", "skip", num_states=8)
    for name, part in update.build(layer, hidden_dim=64, attended_dim=128).items():
        setattr(layer, name, part)
    next_state = update(recurrent, own, read, layer.compute_dtype)
    ```

    References:
        - [Hutchins et al., 2022, Sec. 3.2](https://arxiv.org/abs/2203.07852)
        - [meliad, memory/transformer_layer.py](https://github.com/google-research/meliad)
    """

    def __init__(self, gate, variant, num_states, intermediate_dim=None):
        self.gate = gate
        self.variant = variant
        self.num_states = num_states
        self.intermediate_dim = intermediate_dim
        self.parts = {}

    def build(self, layer, hidden_dim, attended_dim):
        """Creates the projections, feed-forward and gates on `layer`.

        Args:
            layer: the `BlockRecurrentAttention` that owns the weights (its
                `projection` builds the bias-free ones).
            hidden_dim: int. Width of a state vector.
            attended_dim: int. Width of the concatenated attention outputs.

        Returns:
            `{attribute name: layer or variable}` in creation order.
        """
        n = self.num_states
        state_shape = (None, n, hidden_dim)
        attended = (None, n, attended_dim)
        ffn_dim = self.intermediate_dim or 4 * hidden_dim
        parts = self.parts = {}
        if self.variant == "single":
            parts["state_ffn_hidden"] = layer.projection(ffn_dim, attended, "state_ffn_hidden")
            parts["state_ffn_output"] = layer.projection(
                hidden_dim, (None, n, ffn_dim), "state_ffn_output"
            )
            parts.update(self._build_gate(layer, "ffn", ffn_dim, hidden_dim))
            return dict(parts)
        parts["state_output_projection"] = layer.projection(
            hidden_dim, attended, "state_output_projection"
        )
        parts.update(self._build_gate(layer, "attention", attended_dim, hidden_dim))
        if self.variant == "dual":
            norm = keras.layers.RMSNormalization(epsilon=1e-6, dtype=layer.dtype_policy)
            norm.build(state_shape)
            parts["state_ffn_norm"] = norm
            parts["state_ffn_hidden"] = layer.projection(ffn_dim, state_shape, "state_ffn_hidden")
            parts["state_ffn_output"] = layer.projection(
                hidden_dim, (None, n, ffn_dim), "state_ffn_output"
            )
            parts.update(self._build_gate(layer, "ffn", ffn_dim, hidden_dim))
        return dict(parts)

    def _build_gate(self, layer, where, gate_inputs, hidden_dim):
        # Small but non-zero gate parameters, as in meliad.
        bias_init = keras.initializers.RandomNormal(stddev=0.1)
        if self.gate == "fixed":
            weight = layer.add_weight(
                name=f"{where}_gate_bias", shape=(hidden_dim,), initializer=bias_init
            )
            return {f"{where}_gate_bias": weight}
        gates = {}
        for kind in ("forget", "input"):
            dense = AccumulatingDense(
                units=hidden_dim,
                kernel_initializer=keras.initializers.VarianceScaling(
                    0.1, mode="fan_in", distribution="truncated_normal"
                ),
                bias_initializer=bias_init,
                name=f"{where}_{kind}_gate",
                dtype=layer.dtype_policy,
            )
            dense.build((None, self.num_states, gate_inputs))
            gates[f"{where}_{kind}_gate"] = dense
        return gates

    def __call__(self, recurrent, own, read, compute_dtype):
        parts = self.parts
        batch = ops.shape(recurrent)[0]
        attended = ops.reshape(ops.concatenate([own, read], axis=2), (batch, self.num_states, -1))
        attended = ops.cast(attended, compute_dtype)
        if self.variant == "single":
            hidden = ops.relu(parts["state_ffn_hidden"](attended))
            proposal = ops.tanh(parts["state_ffn_output"](hidden))
            return self._gated(recurrent, proposal, hidden, "ffn")
        proposal = parts["state_output_projection"](attended)
        recurrent = self._gated(recurrent, proposal, attended, "attention")
        if self.variant == "skip":
            return recurrent
        hidden = ops.relu(parts["state_ffn_hidden"](parts["state_ffn_norm"](recurrent)))
        return self._gated(recurrent, parts["state_ffn_output"](hidden), hidden, "ffn")

    def _gated(self, recurrent, proposal, gate_inputs, where):
        proposal = ops.cast(proposal, "float32")
        if self.gate == "fixed":
            keep = ops.sigmoid(ops.cast(self.parts[f"{where}_gate_bias"], "float32"))
            return recurrent * keep + proposal * (1 - keep)
        forget = ops.sigmoid(
            ops.cast(self.parts[f"{where}_forget_gate"](gate_inputs), "float32") + 1
        )
        write = ops.sigmoid(ops.cast(self.parts[f"{where}_input_gate"](gate_inputs), "float32") - 1)
        return recurrent * forget + proposal * write
