import numpy as np
import pytest

from keras_memory.layers.rotary_positions import RotaryPositions, check_rotary_options
from keras_memory.ops import rotary_base, rotate
from tests.conftest import to_numpy

D, W = 8, 16


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def test_reversed_counts_positions_backwards():
    x, positions = randn(2, 5, 2, D), np.arange(5)
    standard = RotaryPositions("standard", D, W, base=100.0)
    reversed_ = RotaryPositions("reversed", D, W, base=100.0)
    np.testing.assert_allclose(
        to_numpy(standard(x, positions)), to_numpy(rotate(x, positions, 100.0)), atol=1e-6
    )
    np.testing.assert_allclose(
        to_numpy(reversed_(x, positions)), to_numpy(rotate(x, -positions, 100.0)), atol=1e-6
    )


def test_ntk_scaling_and_its_dynamic_form():
    assert RotaryPositions("standard", D, W, base=100.0).base == 100.0
    scaled = RotaryPositions("standard", D, W, base=100.0, scaling=2.0)
    assert scaled.base == pytest.approx(rotary_base(100.0, D, 2.0))
    # Trained with a window of 4, run with 16: stretched by at least 4.
    dynamic = RotaryPositions("standard", D, W, base=100.0, scaling=2.0, trained_window=4)
    assert dynamic.base == pytest.approx(rotary_base(100.0, D, 4.0))
    # Never below the given scaling.
    assert RotaryPositions("standard", D, W, 100.0, 8.0, 4).base == pytest.approx(
        rotary_base(100.0, D, 8.0)
    )


def test_options_are_checked_by_name():
    assert check_rotary_options(None, 10000.0, 1.0, None, head_dim=5) == (None, 10000.0, 1.0, None)
    for arguments, message in (
        (("alibi", 10000.0, 1.0, None, 8), "`rotary`"),
        (("standard", 10000.0, 1.0, None, 5), "even `head_dim`"),
        ((None, 0.0, 1.0, None, 8), "`rotary_base`"),
        ((None, 10000.0, 0.5, None, 8), "`rotary_scaling`"),
        ((None, 10000.0, 1.0, 0, 8), "`rotary_trained_window`"),
    ):
        with pytest.raises(ValueError, match=message):
            check_rotary_options(*arguments)
