import numpy as np
import pytest

from keras_memory.layers.compressed_memory import CompressedMemory, check_compression_options
from tests.conftest import to_numpy
from tests.reference import l2_normalize

B, H, D, W, SIZE, RATE = 2, 2, 4, 4, 6, 2


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def memory(normalize_keys=True):
    return CompressedMemory(SIZE, RATE, W, H, D, normalize_keys)


def test_state_shapes():
    assert memory().state_shapes(B) == {
        "compressed_keys": ((B, SIZE, H, D), "float32"),
        "compressed_values": ((B, SIZE, H, D), "float32"),
        "compressed_valid": ((B, SIZE), "int32"),
    }


def test_reset_rows_read_it_empty():
    state = {
        "compressed_keys": randn(B, SIZE, H, D),
        "compressed_values": randn(B, SIZE, H, D, seed=1),
        "compressed_valid": np.ones((B, SIZE), "int32"),
    }
    read = memory().read(state, np.array([False, True]))
    np.testing.assert_array_equal(to_numpy(read["memory_keys"])[0], 0.0)
    np.testing.assert_array_equal(to_numpy(read["memory_keys"])[1], state["compressed_keys"][1])
    assert to_numpy(read["memory_valid"]).tolist() == [[False] * SIZE, [True] * SIZE]


@pytest.mark.parametrize("normalize_keys", [True, False])
def test_what_leaves_the_view_is_pooled_and_pushed_first_in_first_out(normalize_keys):
    keys, values = randn(B, 2 * W, H, D, seed=2), randn(B, 2 * W, H, D, seed=3)
    cache = {
        "cache_keys": randn(B, W, H, D, seed=4),
        "cache_values": randn(B, W, H, D, seed=5),
        "cache_valid": np.array([True, False]),
    }
    old = {
        "memory_keys": randn(B, SIZE, H, D, seed=6),
        "memory_values": randn(B, SIZE, H, D, seed=7),
        "memory_valid": np.ones((B, SIZE), bool),
    }
    new = memory(normalize_keys).compress(keys, values, cache, old)
    # The old cache and the segment's first window left: 2W tokens, W entries.
    leaving = np.concatenate([cache["cache_keys"], keys[:, :W]], 1)
    pooled = leaving.reshape(B, W, RATE, H, D).mean(2)
    pooled = l2_normalize(pooled) if normalize_keys else pooled
    expected = np.concatenate([old["memory_keys"], pooled], 1)[:, -SIZE:]
    np.testing.assert_allclose(to_numpy(new["compressed_keys"]), expected, atol=1e-5)
    leaving_values = np.concatenate([cache["cache_values"], values[:, :W]], 1)
    expected_values = np.concatenate(
        [old["memory_values"], leaving_values.reshape(B, W, RATE, H, D).mean(2)], 1
    )[:, -SIZE:]
    np.testing.assert_allclose(to_numpy(new["compressed_values"]), expected_values, atol=1e-5)
    # Row 1 had no valid cache: its entries pooled from it are invalid.
    assert to_numpy(new["compressed_valid"]).tolist() == [[1] * SIZE, [1, 1, 0, 0, 1, 1]]


def test_options_are_checked():
    assert check_compression_options(0, "any", W, use_cache=False) == (0, "any")
    assert check_compression_options(8, 2, W, use_cache=True) == (8, 2)
    with pytest.raises(ValueError, match="needs `use_cache=True`"):
        check_compression_options(8, 2, W, use_cache=False)
    with pytest.raises(ValueError, match="multiple of `compression_rate`"):
        check_compression_options(8, 3, W, use_cache=True)
    with pytest.raises(ValueError, match="`compressed_memory_size`"):
        check_compression_options(-1, 2, W, use_cache=True)
