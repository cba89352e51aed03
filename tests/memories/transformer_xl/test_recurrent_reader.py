"""Reading another layer's recurrent state, the piece XLAttention composes."""

import numpy as np
import pytest

from keras_memory.layers import XLAttention
from keras_memory.memories.transformer_xl.recurrent_reader import RecurrentStateReader
from tests.conftest import to_numpy
from tests.reference import l2_normalize

B, H, D, W, HIDDEN, STATES = 2, 2, 4, 4, 8, 3


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


@pytest.mark.parametrize("normalize_keys", [True, False])
def test_second_queries_attend_to_the_whole_state(normalize_keys):
    layer = XLAttention(H, D, W, normalize_keys=normalize_keys, read_recurrent_state=True)
    layer.build((B, None, HIDDEN))
    assert isinstance(layer.reader, RecurrentStateReader)
    assert layer.reader.query_projection is layer.recurrent_query_projection
    assert (layer.recurrent_scale is None) == (not normalize_keys)
    x = randn(B, 2 * W, HIDDEN)
    keys, values = l2_normalize(randn(B, STATES, H, D, seed=1)), randn(B, STATES, H, D, seed=2)
    got = to_numpy(layer.reader(x, (keys, values)))
    queries = (x @ to_numpy(layer.recurrent_query_projection.kernel)).reshape(B, 2 * W, H, D)
    logits = np.einsum(
        "bqhd,bkhd->bhqk", l2_normalize(queries) if normalize_keys else queries, keys
    )
    if normalize_keys:
        logits *= np.abs(to_numpy(layer.recurrent_scale))[None, :, None, None]
    else:
        logits /= np.sqrt(D)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    np.testing.assert_allclose(got, np.einsum("bhqk,bkhd->bqhd", weights, values), atol=1e-5)


def test_only_a_reader_has_the_second_queries():
    plain = XLAttention(H, D, W)
    plain.build((B, None, HIDDEN))
    assert plain.reader is None and not hasattr(plain, "recurrent_query_projection")
    assert tuple(plain.output_projection.kernel.shape) == (H * D, HIDDEN)
    reader = XLAttention(H, D, W, read_recurrent_state=True)
    reader.build((B, None, HIDDEN))
    # Both attentions' heads reach the output projection.
    assert tuple(reader.output_projection.kernel.shape) == (2 * H * D, HIDDEN)
    # The layer's own variables, in the order saved files hold them.
    own = [v.name for v in reader.trainable_weights if v.path.count("/") == 1]
    assert own == ["attention_scale", "recurrent_scale"]


def test_bad_recurrent_kv_names_it():
    layer = XLAttention(H, D, W, read_recurrent_state=True)
    layer.build((B, None, HIDDEN))
    x = randn(B, W, HIDDEN)
    with pytest.raises(ValueError, match="`recurrent_kv=\\(keys, values\\)`"):
        layer.reader(x, None)
    with pytest.raises(ValueError, match="`recurrent_kv` values must have shape"):
        layer.reader(x, (randn(B, STATES, H, D), randn(B, STATES, H, D + 1)))
