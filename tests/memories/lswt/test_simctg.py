import os

import keras
import numpy as np
import pytest
from keras import ops

from keras_memory.losses import simctg_contrastive_loss
from keras_memory.models import MemoryLM
from tests.conftest import to_numpy


def numpy_simctg(hidden, mask, margin):
    total, count = 0.0, 0
    for b in range(hidden.shape[0]):
        h = hidden[b] / np.linalg.norm(hidden[b], axis=-1, keepdims=True)
        s = h @ h.T
        for i in range(len(h)):
            for j in range(len(h)):
                if i != j and mask[b, i] and mask[b, j]:
                    total += max(0.0, margin - s[i, i] + s[i, j])
                    count += 1
    return total / max(count, 1)


def test_matches_the_formula_and_ignores_padding():
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((2, 6, 5)).astype("float32")
    mask = np.ones((2, 6), bool)
    mask[1, 4:] = False
    got = float(to_numpy(simctg_contrastive_loss(hidden, mask, margin=0.5)))
    assert got == pytest.approx(numpy_simctg(hidden, mask, 0.5), rel=1e-5)
    changed = hidden.copy()
    changed[1, 4:] = rng.standard_normal((2, 5))
    again = float(to_numpy(simctg_contrastive_loss(changed, mask, margin=0.5)))
    assert again == pytest.approx(got, rel=1e-6)
    # Identical tokens cost the full margin; opposite ones cost nothing.
    same = np.ones((1, 3, 4), "float32")
    assert float(to_numpy(simctg_contrastive_loss(same, margin=0.5))) == pytest.approx(0.5)
    # Without a mask every row's pairs count (the count once covered one row only).
    batch = np.ones((3, 5, 4), "float32")
    assert float(to_numpy(simctg_contrastive_loss(batch, margin=0.5))) == pytest.approx(0.5)
    unmasked = float(to_numpy(simctg_contrastive_loss(hidden, margin=0.5)))
    assert unmasked == pytest.approx(numpy_simctg(hidden, np.ones((2, 6), bool), 0.5), rel=1e-5)
    with pytest.raises(ValueError, match="hidden_states"):
        simctg_contrastive_loss(np.ones((3, 4), "float32"))


def test_a_model_with_a_margin_adds_the_term_to_its_training_loss(tmp_path):
    options = dict(hidden_dim=16, num_heads=2, head_dim=8, intermediate_dim=32, window_length=8)
    tokens = np.random.default_rng(1).integers(3, 259, (2, 16)).astype("int32")
    tokens[1, 12:] = 0  # padding
    inputs = {"tokens": tokens, "reset": np.array([True, True])}
    targets = np.roll(tokens, -1, axis=1)
    losses = {}
    for margin in (None, 0.5):
        keras.utils.set_random_seed(3)
        model = MemoryLM.from_preset(
            "tiny",
            kind="xl",
            stateful=True,
            contrastive_margin=margin,
            contrastive_weight=2.0,
            **options,
        )
        model.compile(optimizer=keras.optimizers.SGD(0.0))
        losses[margin] = float(model.train_on_batch(inputs, targets))
    embedded = model.token_embedding(tokens)
    model.reset_state()
    hidden, _ = model.call_stack(embedded, None, ops.convert_to_tensor(inputs["reset"]), False)
    hidden = to_numpy(model.final_norm(hidden))
    expected = 2.0 * numpy_simctg(hidden, tokens != 0, 0.5)
    assert losses[0.5] - losses[None] == pytest.approx(expected, rel=1e-3, abs=1e-4)
    path = os.path.join(tmp_path, "simctg.keras")
    model.save(path)
    assert keras.saving.load_model(path).contrastive_margin == 0.5
    with pytest.raises(ValueError, match="contrastive_margin"):
        MemoryLM.from_preset("tiny", kind="xl", contrastive_margin=-1.0)
