import numpy as np
import pytest

from keras_memory.layers import KNNAttention, XLAttention
from keras_memory.ops import exact_top_k
from tests.conftest import to_numpy

B, H, D, W, S, HIDDEN = 2, 2, 4, 4, 8, 8
# Where the memory's entries live: both behave as one ring (keras_memory.backend.host_memory).
PLACEMENTS = pytest.mark.parametrize("placement", ["device", "host"])


def make_layer(memory_size=32, num_neighbors=4, **kwargs):
    layer = KNNAttention(H, D, W, memory_size=memory_size, num_neighbors=num_neighbors, **kwargs)
    layer.build((B, None, HIDDEN))
    return layer


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def starts(*flags):
    return np.array(flags, dtype=bool)


def test_exact_top_k_matches_brute_force_across_chunks():
    q, mem = randn(B, 5, H, D, seed=1), randn(B, 37, H, D, seed=2)
    valid = np.random.default_rng(3).random((B, 37)) > 0.3
    scores, indices = exact_top_k(q, mem, valid, k=6, chunk_size=8)
    brute = np.einsum("bqhd,bmhd->bhqm", q, mem)
    brute = np.where(valid[:, None, None], brute, -np.inf)
    expected = np.sort(brute, -1)[..., ::-1][..., :6]
    np.testing.assert_allclose(to_numpy(scores), expected, atol=1e-5)
    picked = np.take_along_axis(brute, to_numpy(indices), -1)
    np.testing.assert_allclose(picked, expected, atol=1e-5)


def test_k_equal_to_memory_size_is_dense_attention_over_the_memory():
    layer = make_layer(memory_size=16, num_neighbors=16)
    q, keys, values = (
        randn(B, S, H, D, seed=1),
        randn(B, 16, H, D, seed=2),
        randn(B, 16, H, D, seed=3),
    )
    valid = np.ones((B, 16), bool)
    got = to_numpy(layer._memory_attention(q, keys, values, valid))
    scale = np.abs(to_numpy(layer.attention_scale))
    logits = np.einsum("bqhd,bmhd->bhqm", q, keys) * scale[None, :, None, None]
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    np.testing.assert_allclose(got, np.einsum("bhqm,bmhd->bqhd", p, values), atol=1e-5)


def test_queries_get_the_gradient_of_dense_attention_over_the_retrieved_entries():
    # The search runs without gradient and the chosen entries are rescored;
    # with k == memory that must be exactly the gradient of dense attention.
    from tests.backend_utils import input_gradient

    layer = make_layer(memory_size=16, num_neighbors=16)
    keys, values = randn(B, 16, H, D, seed=2), randn(B, 16, H, D, seed=3)
    valid = np.ones((B, 16), bool)
    scale = np.abs(to_numpy(layer.attention_scale))[None, :, None, None]

    def dense(q):
        from keras import ops

        logits = ops.einsum("bqhd,bmhd->bhqm", q, keys) * ops.convert_to_tensor(scale)
        return ops.einsum("bhqm,bmhd->bqhd", ops.softmax(logits, axis=-1), values)

    q = randn(B, S, H, D, seed=1)
    for position in (0, S - 1):
        got = input_gradient(lambda v: layer._memory_attention(v, keys, values, valid), q, position)
        want = input_gradient(dense, q, position)
        np.testing.assert_allclose(got, want, atol=1e-5)
        assert np.abs(want).max() > 1e-3


def test_ring_buffer_holds_exactly_the_last_entries_after_wrapping():
    layer = make_layer(memory_size=2 * S)
    state, written = None, []
    for i in range(5):
        x = randn(B, S, HIDDEN, seed=10 + i)
        written.append(to_numpy(layer.project_qkv(x)[1]))
        _, state = layer(x, state=state, reset=starts(i == 0, i == 0))
    # Five segments into two slots: slots hold segments 4 and 3, in ring order.
    memory = to_numpy(state["memory_keys"])
    np.testing.assert_allclose(memory[:, :S], written[4], atol=1e-6)
    np.testing.assert_allclose(memory[:, S:], written[3], atol=1e-6)
    assert int(to_numpy(state["memory_pointer"])) == S
    assert to_numpy(state["memory_valid"]).all()


def open_gate(layer):
    """Gate -> 1: the output is the memory attention alone."""
    layer.memory_gate.assign(np.full(H, 100.0, "float32"))


@PLACEMENTS
def test_a_segment_cannot_retrieve_its_own_keys(placement):
    layer = make_layer(memory_placement=placement)
    open_gate(layer)
    y, _ = layer(randn(B, S, HIDDEN), reset=starts(True, True))
    # An empty memory gives nothing: the segment's own keys are written after retrieval.
    np.testing.assert_allclose(to_numpy(y), 0.0, atol=1e-6)


def test_reset_rows_forget_the_previous_document_and_others_keep_theirs():
    layer = make_layer()
    open_gate(layer)
    _, state = layer(randn(B, S, HIDDEN, seed=1), reset=starts(True, True))
    x = randn(B, S, HIDDEN, seed=2)
    y, new_state = layer(x, state=state, reset=starts(True, False))
    y = to_numpy(y)
    np.testing.assert_allclose(y[0], 0.0, atol=1e-6)
    assert np.abs(y[1]).max() > 1e-3
    continued, _ = layer(x, state=state, reset=starts(False, False))
    np.testing.assert_allclose(y[1], to_numpy(continued)[1], atol=1e-6)
    assert to_numpy(new_state["memory_valid"])[0].sum() == S  # only its new segment


@PLACEMENTS
def test_closed_gate_reproduces_attention_without_memory(placement):
    layer = make_layer(memory_placement=placement)
    layer.memory_gate.assign(np.full(H, -100.0, "float32"))
    plain = XLAttention(H, D, W, use_position_bias=False)
    plain.build((B, None, HIDDEN))
    for target, source in zip(plain.trainable_weights, layer.trainable_weights[1:], strict=True):
        target.assign(source)
    state, plain_state = None, None
    for i in range(3):
        x, reset = randn(B, S, HIDDEN, seed=i), starts(i == 0, True)
        y, state = layer(x, state=state, reset=reset)
        expected, plain_state = plain(x, state=plain_state, reset=reset)
        np.testing.assert_allclose(to_numpy(y), to_numpy(expected), atol=1e-5)


def test_gate_starts_at_one_half():
    layer = make_layer()
    np.testing.assert_allclose(1 / (1 + np.exp(-to_numpy(layer.memory_gate))), 0.5)


@PLACEMENTS
def test_stateful_equals_functional_and_config_round_trips(placement):
    functional = make_layer(memory_placement=placement)
    stateful = KNNAttention(
        H, D, W, memory_size=32, num_neighbors=4, stateful=True, memory_placement=placement
    )
    stateful.build((B, None, HIDDEN))
    for target, source in zip(stateful.trainable_weights, functional.trainable_weights):
        target.assign(source)
    state = None
    for i in range(3):
        x, reset = randn(B, S, HIDDEN, seed=i), starts(i == 0, i != 1)
        expected, state = functional(x, state=state, reset=reset)
        np.testing.assert_allclose(
            to_numpy(stateful(x, reset=reset)), to_numpy(expected), atol=1e-5
        )
    clone = KNNAttention.from_config(functional.get_config())
    assert clone.get_config() == functional.get_config()


def test_bad_arguments_are_refused_clearly():
    with pytest.raises(ValueError, match="`num_neighbors`"):
        KNNAttention(H, D, W, memory_size=4, num_neighbors=8)
    with pytest.raises(ValueError, match="`memory_size`"):
        KNNAttention(H, D, W, memory_size=0)
    layer = make_layer(memory_size=20)
    with pytest.raises(ValueError, match="multiple of the segment length"):
        layer(randn(B, S, HIDDEN))


def test_old_configs_load_and_the_window_options_are_honoured():
    # Saved before the redesign, when the layer took every XLAttention argument.
    config = make_layer(rotary="standard", num_registers=2).get_config()
    old = dict(config, read_recurrent_state=False)
    layer = KNNAttention.from_config(old)
    assert layer.get_config() == config
    assert (layer.rotary, layer.num_registers) == ("standard", 2)
    with pytest.raises(ValueError, match="KNNAttention does not take `read_recurrent_state`"):
        KNNAttention.from_config(dict(config, read_recurrent_state=True))
    # A position bias is an option of the local attention now (off, as meliad's).
    assert layer.use_position_bias is False
    assert make_layer(use_position_bias=True).position_bias is not None
