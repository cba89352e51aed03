"""`MemoryLayer`'s public helpers: its state variables, and finding memory layers."""

import keras
import numpy as np

from keras_memory.layers import KNNAttention, TransformerBlock, XLAttention
from keras_memory.layers.memory_layer import memory_layers, zero_rows
from keras_memory.models import MemoryLM
from tests.conftest import to_numpy

B, H, D, W, HIDDEN = 2, 2, 4, 4, 8


def test_state_variables_of_a_stateful_layer_only():
    stateful = XLAttention(H, D, W, stateful=True)
    assert stateful.state_variables() == {}  # not built yet
    stateful.build((B, None, HIDDEN))
    variables = stateful.state_variables()
    assert list(variables) == ["keys", "values", "valid"]
    assert all(not v.trainable for v in variables.values())
    assert [v.path for v in variables.values()] == [
        f"{stateful.name}/state_{name}" for name in variables
    ]
    variables.clear()  # a copy: the layer keeps its own
    assert len(stateful.state_variables()) == 3
    functional = XLAttention(H, D, W)
    functional.build((B, None, HIDDEN))
    assert functional.state_variables() == {}


def test_memory_layers_of_a_model_blocks_and_a_layer():
    model = MemoryLM.from_preset(
        "tiny",
        kind="memorizing",
        vocab_size=40,
        hidden_dim=HIDDEN,
        num_layers=2,
        num_heads=H,
        head_dim=D,
        intermediate_dim=16,
        window_length=W,
        memory_size=32,
        num_neighbors=2,
        memory_layer=1,
    )
    found = memory_layers(model)
    blocks = list(model.blocks)
    assert found == [blocks[0], blocks[0].attention, blocks[1], blocks[1].attention]
    assert isinstance(found[3], KNNAttention)
    assert memory_layers(blocks[1]) == [blocks[1], blocks[1].attention]
    assert memory_layers(blocks[1].attention) == [blocks[1].attention]
    assert memory_layers(keras.layers.Dense(3)) == []


def test_memory_layers_of_a_functional_model_and_a_list_attribute():
    attention = XLAttention(H, D, W, stateful=True)
    inputs = keras.Input((W, HIDDEN), batch_size=B)
    model = keras.Model(inputs, keras.layers.Dense(HIDDEN)(attention(inputs)))
    assert memory_layers(model) == [attention]

    class Holder(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.stack = [TransformerBlock(XLAttention(H, D, W), 16)]
            self._hidden = XLAttention(H, D, W)  # private: not a public route

    holder = Holder()
    assert memory_layers(holder) == [holder.stack[0], holder.stack[0].attention]


def test_zero_rows():
    x = np.arange(2 * 3 * 2, dtype="float32").reshape(2, 3, 2) + 1
    got = to_numpy(zero_rows(x, np.array([True, False])))
    np.testing.assert_array_equal(got[0], x[0])
    np.testing.assert_array_equal(got[1], 0.0)
