import keras
import numpy as np
from keras import ops

from keras_memory.backend import map_over_leading_axis
from keras_memory.backend.slice_map import slicing_is_faster
from tests.conftest import to_numpy


def test_map_over_leading_axis_equals_one_batched_call():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 4, 5)).astype("float32")
    b = rng.standard_normal((3, 5, 6)).astype("float32")
    valid = rng.random((3, 6)) > 0.5

    def fn(a, b, valid):
        products = ops.matmul(a, b)
        return ops.where(valid[:, None, :], products, 0.0), ops.sum(products, axis=(1, 2))

    mapped, totals = map_over_leading_axis(fn, a, b, valid)
    expected = np.where(valid[:, None, :], a @ b, 0.0)
    np.testing.assert_allclose(to_numpy(mapped), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(to_numpy(totals), (a @ b).sum(axis=(1, 2)), rtol=1e-5, atol=1e-4)


def test_slicing_only_on_jax_cpu_without_a_distribution():
    if keras.backend.backend() != "jax":
        assert not slicing_is_faster()
        return
    import jax

    assert slicing_is_faster() == (jax.default_backend() == "cpu")
    devices = keras.distribution.list_devices()
    with keras.distribution.DataParallel(devices=devices).scope():
        assert not slicing_is_faster()
