"""Sampling carries every memory kind's state exactly as a forward pass does."""

import numpy as np
import pytest

from keras_memory.generation import _sample, generate
from keras_memory.models import MemoryLM
from tests.conftest import to_numpy

W, SEGMENT = 4, 8
SMALL = dict(hidden_dim=16, num_layers=2, num_heads=2, head_dim=8, intermediate_dim=32)
KINDS = {
    "xl": {},
    "memorizing": {"memory_size": 32, "num_neighbors": 4},
    "block_recurrent": {"num_states": 3, "feedback": True},
    "melodi": {
        "summary_size": 2,
        "short_term_memory_size": 2,
        "long_term_memory_size": 8,
        "long_term_increment": 2,
    },
}


def teacher_forced_logits(model, text):
    """Logits of a forward pass over `text`, segment by segment, padding the last one."""
    padded = np.zeros(-(-len(text) // SEGMENT) * SEGMENT, np.int32)
    padded[: len(text)] = text
    state, logits = None, []
    for start in range(0, len(padded), SEGMENT):
        inputs = {"tokens": padded[None, start : start + SEGMENT], "reset": np.array([start == 0])}
        out, state = model(inputs, state=state)
        logits.append(to_numpy(out)[0])
    return np.concatenate(logits)[: len(text)]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_tokens_generated_one_by_one_get_the_forward_pass_logits(kind):
    model = MemoryLM.from_preset("tiny", kind=kind, window_length=W, **SMALL, **KINDS[kind])
    prompt = np.random.default_rng(0).integers(3, 259, 11).astype("int32")
    # 13 tokens cross two segment boundaries after an unfinished prompt segment.
    ids, logits = generate(model, prompt, 13, SEGMENT, temperature=0, return_logits=True)
    text = np.concatenate([prompt, ids])
    expected = teacher_forced_logits(model, text)[len(prompt) - 1 : -1]
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
    # Greedy: each token is the argmax of its logits (padding excluded).
    expected[:, 0] = -np.inf
    np.testing.assert_array_equal(ids, expected.argmax(axis=1))


def test_top_k_and_top_p_restrict_the_candidates():
    logits = np.log(np.array([0.0001, 0.5, 0.3, 0.15, 0.0499]))
    rng = np.random.default_rng(0)
    draws = {_sample(logits.copy(), 1.0, None, 0.7, rng, 0) for _ in range(300)}
    assert draws == {1, 2}  # 0.5 alone < 0.7; with 0.3 the nucleus holds
    draws = {_sample(logits.copy(), 1.0, 3, None, rng, 0) for _ in range(300)}
    assert draws == {1, 2, 3}
    draws = {_sample(logits.copy(), 1.0, None, 1.0, rng, 0) for _ in range(2000)}
    assert draws == {1, 2, 3, 4}  # token 0 is padding, never sampled


def test_bad_sampling_parameters_name_the_argument():
    model = MemoryLM.from_preset("tiny", kind="xl", window_length=W, **SMALL)
    for bad, name in (
        (dict(temperature=-1.0), "temperature"),
        (dict(top_k=0), "top_k"),
        (dict(top_k=10_000), "top_k"),
        (dict(top_p=0.0), "top_p"),
        (dict(top_p=1.5), "top_p"),
    ):
        with pytest.raises(ValueError, match=name):
            generate(model, [1, 5], 2, SEGMENT, **bad)
    with pytest.raises(ValueError, match="num_tokens"):
        generate(model, [1, 5], -1, SEGMENT)


def test_the_models_padding_id_pads_and_is_never_sampled():
    # OPT's vocabulary pads with 1; 0 is an ordinary token there.
    model = MemoryLM.from_preset("tiny", kind="xl", window_length=W, pad_token_id=7, **SMALL)
    prompt = np.random.default_rng(1).integers(3, 259, 5).astype("int32")
    ids, logits = generate(model, prompt, 6, SEGMENT, temperature=0, return_logits=True)
    expected = teacher_forced_logits(model, np.concatenate([prompt, ids]))[len(prompt) - 1 : -1]
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
    expected[:, 7] = -np.inf
    np.testing.assert_array_equal(ids, expected.argmax(axis=1))
    logits = np.zeros(10)
    logits[7] = 50.0  # by far the likeliest, yet padding
    rng = np.random.default_rng(0)
    assert 7 not in {_sample(logits.copy(), 1.0, None, None, rng, 7) for _ in range(200)}
