import keras
import numpy as np
import pytest

from keras_memory.layers.attention_registers import AttentionRegisters, check_num_registers
from tests.conftest import to_numpy
from tests.reference import l2_normalize

B, N, H, D = 2, 3, 2, 4


def built(normalize_keys=True):
    owner = keras.layers.Layer(name="owner")
    registers = AttentionRegisters(N, H, D, normalize_keys)
    keys, values = registers.build(owner)
    return owner, registers, keys, values


def test_registers_are_weights_of_their_layer():
    owner, _, keys, values = built()
    assert owner.trainable_weights == [keys, values]
    assert [w.path for w in owner.weights] == ["owner/register_keys", "owner/register_values"]
    assert tuple(keys.shape) == tuple(values.shape) == (N, H, D)


@pytest.mark.parametrize("normalize_keys", [True, False])
def test_every_row_sees_the_same_registers(normalize_keys):
    _, registers, keys, values = built(normalize_keys)
    memory = {name: to_numpy(v) for name, v in registers.prepend({}, B).items()}
    expected_keys = to_numpy(keys)
    if normalize_keys:
        expected_keys = l2_normalize(expected_keys)
    for row in range(B):
        np.testing.assert_allclose(memory["memory_keys"][row], expected_keys, atol=1e-6)
        np.testing.assert_allclose(memory["memory_values"][row], to_numpy(values), atol=1e-6)
    assert memory["memory_valid"].all() and memory["memory_valid"].shape == (B, N)


def test_registers_come_before_the_memory():
    _, registers, _, _ = built()
    memory = {
        "memory_keys": np.ones((B, 2, H, D), "float32"),
        "memory_values": np.full((B, 2, H, D), 2.0, "float32"),
        "memory_valid": np.array([[True, False], [False, True]]),
    }
    joined = {name: to_numpy(v) for name, v in registers.prepend(memory, B).items()}
    np.testing.assert_array_equal(joined["memory_keys"][:, N:], 1.0)
    np.testing.assert_array_equal(joined["memory_values"][:, N:], 2.0)
    assert joined["memory_valid"].tolist() == [
        [True] * N + [True, False],
        [True] * N + [False, True],
    ]


def test_registers_need_the_cache():
    assert check_num_registers(0, use_cache=False) == 0
    assert check_num_registers(4, use_cache=True) == 4
    with pytest.raises(ValueError, match="`num_registers` needs the XL cache"):
        check_num_registers(4, use_cache=False)
    with pytest.raises(ValueError, match="`num_registers`"):
        check_num_registers(-1, use_cache=True)
