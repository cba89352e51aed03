"""The recurrent state's gated update, the piece BlockRecurrentAttention composes."""

import keras
import numpy as np
import pytest

from keras_memory.layers.attention_heads import AttentionHeads
from keras_memory.memories.block_recurrent.state_update import StateUpdate
from tests.conftest import to_numpy

B, N, HIDDEN, H, D = 2, 3, 8, 2, 4
ATTENDED = 2 * H * D


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def built(gate, variant, intermediate_dim=None):
    owner = AttentionHeads(H, D, name="owner")
    update = StateUpdate(gate, variant, N, intermediate_dim)
    parts = update.build(owner, HIDDEN, ATTENDED)
    return owner, update, parts


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def run(update, recurrent, own, read):
    """The update on tensors, as the layer calls it."""
    tensors = (keras.ops.convert_to_tensor(t) for t in (recurrent, own, read))
    return to_numpy(update(*tensors, "float32"))


@pytest.mark.parametrize(
    "gate, variant, names",
    [
        ("fixed", "skip", ["state_output_projection", "attention_gate_bias"]),
        (
            "lstm",
            "skip",
            ["state_output_projection", "attention_forget_gate", "attention_input_gate"],
        ),
        ("fixed", "single", ["state_ffn_hidden", "state_ffn_output", "ffn_gate_bias"]),
        (
            "fixed",
            "dual",
            [
                "state_output_projection",
                "attention_gate_bias",
                "state_ffn_norm",
                "state_ffn_hidden",
                "state_ffn_output",
                "ffn_gate_bias",
            ],
        ),
    ],
)
def test_parts_in_creation_order_and_gate_biases_owned_by_the_layer(gate, variant, names):
    owner, _, parts = built(gate, variant, intermediate_dim=12)
    assert list(parts) == names
    # Fixed gates are the owner's own weights, in creation order.
    assert [v.name for v in owner.trainable_weights] == [n for n in names if "bias" in n]
    for name, part in parts.items():
        if isinstance(part, keras.layers.Layer) and "ffn_hidden" in name:
            assert part.units == 12


def test_a_fixed_gate_keeps_c_g_plus_u_one_minus_g():
    _, update, parts = built("fixed", "skip")
    recurrent = randn(B, N, HIDDEN)
    own, read = randn(B, N, H, D, seed=1), randn(B, N, H, D, seed=2)
    got = run(update, recurrent, own, read)
    attended = np.concatenate([own, read], axis=2).reshape(B, N, ATTENDED)
    proposal = attended @ to_numpy(parts["state_output_projection"].kernel)
    keep = sigmoid(to_numpy(parts["attention_gate_bias"]))
    np.testing.assert_allclose(got, recurrent * keep + proposal * (1 - keep), atol=1e-5)


def test_lstm_gates_are_biased_to_remember():
    _, update, parts = built("lstm", "skip")
    for kind in ("forget", "input"):
        dense = parts[f"attention_{kind}_gate"]
        dense.kernel.assign(np.zeros(dense.kernel.shape, "float32"))
        dense.bias.assign(np.zeros(dense.bias.shape, "float32"))
    recurrent = randn(B, N, HIDDEN)
    own, read = randn(B, N, H, D, seed=1), randn(B, N, H, D, seed=2)
    got = run(update, recurrent, own, read)
    attended = np.concatenate([own, read], axis=2).reshape(B, N, ATTENDED)
    proposal = attended @ to_numpy(parts["state_output_projection"].kernel)
    # f = sigmoid(0 + 1), i = sigmoid(0 - 1)
    np.testing.assert_allclose(got, recurrent * sigmoid(1) + proposal * sigmoid(-1), atol=1e-5)
