import keras
import numpy as np
import pytest

from keras_memory.models import MODEL_KINDS, MemoryLM

W = 8
TOLERANCE = 2**-5
SMALL = dict(
    hidden_dim=16,
    num_layers=2,
    num_heads=2,
    head_dim=8,
    intermediate_dim=32,
    window_length=W,
    segment_length=2 * W,
)


def small_model(kind, stateful):
    options = dict(SMALL, memory_size=4 * W) if kind.startswith("memorizing") else SMALL
    return MemoryLM.from_preset(
        "tiny", kind=kind, stateful=stateful, dtype="mixed_bfloat16", **options
    )


def batch(first, seed):
    tokens = np.random.default_rng(seed).integers(3, 259, size=(2, 2 * W + 1)).astype("int32")
    return {"tokens": tokens[:, :-1], "reset": np.array([first, first])}, tokens[:, 1:]


def dtypes(state):
    return [
        {name: keras.backend.standardize_dtype(value.dtype) for name, value in block.items()}
        for block in state
    ]


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_functional_state_keeps_its_dtypes_across_calls(kind):
    # Keras casts a call's floating arguments to bfloat16 under this policy;
    # a float32 cache or memory handed back would be rounded every segment.
    model = small_model(kind, stateful=False)
    _, state = model(batch(True, 0)[0])
    first = dtypes(state)
    if kind != "local":  # the one kind without a state
        assert "float32" in {dtype for block in first for dtype in block.values()}
    for seed in (1, 2):
        _, state = model(batch(False, seed)[0], state=state)
        assert dtypes(state) == first


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_stateful_model_trains_in_mixed_precision(kind):
    model = small_model(kind, stateful=True)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    losses = [float(model.train_on_batch(*batch(i == 0, i))) for i in range(3)]
    assert np.all(np.isfinite(losses))
    assert {keras.backend.standardize_dtype(v.dtype) for v in model.trainable_variables} == {
        "float32"
    }


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_mixed_precision_computes_what_float32_computes_at_bfloat16_precision(kind):
    # The same weights under both policies, over two segments (so the state
    # counts too). bfloat16 keeps 2^-8 of a value; the logits of these
    # two-layer models stayed within 1% of the float32 model's largest logit
    # on JAX and torch; a model that lost its state (checked below) is off by
    # more than this bound.
    mixed = small_model(kind, stateful=False)
    options = dict(SMALL, memory_size=4 * W) if kind.startswith("memorizing") else SMALL
    exact = MemoryLM.from_preset("tiny", kind=kind, stateful=False, dtype="float32", **options)
    inputs = [batch(i == 0, i)[0] for i in range(2)]
    mixed(inputs[0])
    exact(inputs[0])
    exact.set_weights(mixed.get_weights())
    state_mixed = state_exact = None
    for x in inputs:
        logits_mixed, state_mixed = mixed(x, state=state_mixed)
        logits_exact, state_exact = exact(x, state=state_exact)
        logits_mixed = keras.ops.convert_to_numpy(keras.ops.cast(logits_mixed, "float32"))
        logits_exact = keras.ops.convert_to_numpy(logits_exact)
        error = np.abs(logits_mixed - logits_exact).max() / np.abs(logits_exact).max()
        assert error < TOLERANCE, (kind, error)
    if kind != "local":  # the bound is tight enough to see a lost state
        forgotten, _ = exact(inputs[1])
        forgotten = keras.ops.convert_to_numpy(forgotten)
        change = np.abs(forgotten - logits_exact).max() / np.abs(logits_exact).max()
        assert change > TOLERANCE, (kind, change)
