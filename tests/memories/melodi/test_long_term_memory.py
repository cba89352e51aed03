"""Melodi's long-term memory, the piece MelodiLayer composes."""

import keras
import numpy as np

from keras_memory.memories.melodi.long_term_memory import LongTermMemory
from keras_memory.ops.attention import dense_attention
from tests.conftest import to_numpy

B, SIZE, INCREMENT, H, D, HIDDEN, W, U = 2, 4, 2, 2, 4, 8, 4, 2


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def kvq(x):
    """Stand-in projections: keys, values and queries straight from the embeddings."""
    heads = keras.ops.reshape(x, (keras.ops.shape(x)[0], x.shape[1], H, D))
    return heads, heads * 2.0, heads


def built():
    owner = keras.layers.Layer(name="owner")
    memory = LongTermMemory(SIZE, INCREMENT, H, D)
    parts = memory.build(owner, (B, W, HIDDEN), (B, U, HIDDEN), 1e-6)
    return owner, memory, parts


def test_parts_and_state():
    owner, memory, parts = built()
    assert list(parts) == ["long_term_mixing", "long_term_gate"]
    assert owner.trainable_weights == [parts["long_term_gate"]]
    assert memory.state_shapes(B, HIDDEN) == {
        "long_memory": ((B, SIZE, HIDDEN), "float32"),
        "long_valid": ((B, SIZE), "int32"),
    }


def test_read_forgets_reset_rows_and_write_is_first_in_first_out():
    _, memory, parts = built()
    state = {"long_memory": randn(B, SIZE, HIDDEN), "long_valid": np.ones((B, SIZE), "int32")}
    read = memory.read(state, np.array([True, False]), kvq)
    assert to_numpy(read["valid"]).tolist() == [[True] * SIZE, [False] * SIZE]
    np.testing.assert_array_equal(to_numpy(read["memory"])[1], 0.0)
    np.testing.assert_allclose(to_numpy(read["values"]), 2 * to_numpy(read["keys"]))
    context, summary = randn(B, W, HIDDEN, seed=1), randn(B, U, HIDDEN, seed=2)
    written = memory.write(read, context, summary, kvq)
    added = to_numpy(parts["long_term_mixing"](context, summary))
    expected = np.concatenate([to_numpy(read["memory"])[:, INCREMENT:], added], 1)
    np.testing.assert_allclose(to_numpy(written["memory"]), expected, atol=1e-6)
    np.testing.assert_allclose(
        to_numpy(written["keys"]), expected.reshape(B, SIZE, H, D), atol=1e-6
    )
    new_state = memory.state(written)
    assert to_numpy(new_state["long_valid"]).tolist() == [[1, 1, 1, 1], [0, 0, 1, 1]]


def test_recall_mixes_by_the_gate():
    _, memory, parts = built()
    state = {"long_memory": randn(B, SIZE, HIDDEN), "long_valid": np.ones((B, SIZE), "int32")}
    read = memory.read(state, np.array([True, True]), kvq)
    queries, attended = randn(B, W, H, D, seed=3), randn(B, W, H, D, seed=4)
    got = to_numpy(memory.recall(keras.ops.convert_to_tensor(attended), queries, None, read))
    gate = 1 / (1 + np.exp(-to_numpy(parts["long_term_gate"])))
    recalled = to_numpy(dense_attention(queries, read["keys"], read["values"]))
    np.testing.assert_allclose(got, attended * gate + recalled * (1 - gate), atol=1e-5)
