"""SegmentLM: what makes a segment-reading model safe to train with Keras."""

import keras
import numpy as np
import pytest

from keras_memory.models import MemoryLM

SMALL = dict(hidden_dim=16, num_layers=1, num_heads=2, head_dim=8, intermediate_dim=32)
W = 8


def model(stateful=False):
    return MemoryLM.from_preset("tiny", kind="xl", stateful=stateful, window_length=W, **SMALL)


def test_the_default_loss_counts_no_padding_target():
    lm = model()
    lm.compile()
    rng = np.random.default_rng(0)
    tokens = rng.integers(3, 259, (2, 2 * W))
    targets = rng.integers(3, 259, (2, 2 * W))
    padded = targets.copy()
    padded[:, W:] = lm.pad_token_id
    logits, _ = lm({"tokens": tokens, "reset": np.array([True, True])})
    logits = keras.ops.convert_to_numpy(logits)
    # The mean cross-entropy over the real targets only.
    log_probs = (
        logits
        - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True))
        - logits.max(-1, keepdims=True)
    )
    picked = np.take_along_axis(log_probs, padded[..., None], -1)[..., 0]
    expected = -picked[:, :W].mean()
    got = lm.loss(padded, logits)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got), expected, rtol=1e-5)


def test_a_stateful_model_is_built_on_the_batch_size_of_its_data():
    lm = model(stateful=True)
    assert not lm.built
    batch = {"tokens": np.full((3, 2 * W), 5), "reset": np.array([True, True, True])}
    lm.build_from_data(batch)
    assert lm.built
    state = lm.blocks[0].attention.read_state()
    assert tuple(state["keys"].shape)[0] == 3


def test_a_stateful_model_without_its_batch_size_says_how_to_give_it():
    with pytest.raises(ValueError, match="needs its batch size"):
        model(stateful=True).build_from_data([[1, 2, 3]])


def test_tokens_out_of_the_vocabulary_are_refused_before_any_kernel():
    lm = model()
    with pytest.raises(ValueError, match=r"`tokens` must lie in \[0, vocab_size=259\)"):
        lm({"tokens": np.array([[3, 259]]), "reset": np.array([True])})
