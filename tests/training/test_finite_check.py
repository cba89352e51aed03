import keras
import numpy as np
import pytest

from keras_memory.data import SegmentStream
from keras_memory.layers import XLAttention
from keras_memory.models import MemoryLM
from keras_memory.training import (
    FiniteCheck,
    NonFiniteError,
    check_finite,
    memory_state_variables,
)

B, S = 2, 8
SMALL = dict(
    num_layers=2, hidden_dim=16, num_heads=2, head_dim=4, intermediate_dim=16, window_length=4
)


def small_model(stateful=True):
    return MemoryLM.from_preset("tiny", kind="xl", stateful=stateful, **SMALL)


def batch(seed=0):
    tokens = np.random.default_rng(seed).integers(3, 259, size=(B, S)).astype("int32")
    return {"tokens": tokens, "reset": np.ones(B, bool)}


def poison(variable, index=0, value=np.nan):
    """Writes `value` into one entry of `variable`."""
    array = keras.ops.convert_to_numpy(variable).copy()
    array.reshape(-1)[index] = value
    variable.assign(array)


def float_memory(model):
    """`(path, variable)` of the model's float memory variables, sorted by path."""
    variables = memory_state_variables(model).items()
    return sorted((path, v) for path, v in variables if "float" in str(v.dtype))


def test_clean_model_state_and_inputs_pass():
    model = small_model()
    model(batch())
    assert len(memory_state_variables(model)) == 2 * 3  # keys, values, valid per block
    check_finite(model, inputs=batch())
    functional = small_model(stateful=False)
    _, state = functional(batch())
    check_finite(state)
    check_finite(None, inputs={"x": np.ones((2, 3), "float32"), "n": np.arange(3)})


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_memory_variable_is_named(value):
    model = small_model()
    model(batch())
    path, variable = float_memory(model)[1]
    poison(variable, index=5, value=value)
    with pytest.raises(NonFiniteError, match=f"memory state variable `{path}`") as info:
        check_finite(model)
    assert isinstance(info.value, ValueError)
    assert ("1 NaN" if np.isnan(value) else "1 Inf") in str(info.value)


def test_non_finite_weight_is_named_after_the_memory():
    model = small_model()
    model(batch())
    kernel = model.blocks[1].attention.qkv_projection.kernel
    poison(kernel)
    with pytest.raises(NonFiniteError, match=f"weight `{kernel.path}`"):
        check_finite(model)
    # A NaN that reached the memory is reported first, the weight listed after it.
    path, variable = float_memory(model)[0]
    poison(variable)
    with pytest.raises(NonFiniteError, match=f"`{path}`.*Also non-finite: weight"):
        check_finite(model)


def test_non_finite_input_is_named_first():
    layer = XLAttention(2, 4, 4, stateful=True)
    x = np.ones((B, S, 16), "float32")
    layer(x)
    x[1, 2, 3] = np.nan
    with pytest.raises(NonFiniteError, match="input `inputs`: 1 NaN and 0 Inf of 256 values"):
        check_finite(layer, inputs=x)
    with pytest.raises(NonFiniteError, match=r"input `inputs\['x'\]`"):
        check_finite(layer, inputs={"x": keras.ops.convert_to_tensor(x), "reset": np.ones(B)})


def test_non_finite_functional_state_is_named():
    model = small_model(stateful=False)
    _, state = model(batch())
    state = [{k: keras.ops.convert_to_numpy(v).copy() for k, v in s.items()} for s in state]
    state[1]["values"][0, 0, 0, 0] = np.inf
    with pytest.raises(NonFiniteError, match=r"state\[1\]\['values'\]"):
        check_finite(state)


def test_finite_check_callback_names_the_loss():
    model = small_model()
    model(batch())
    callback = FiniteCheck()
    callback.set_model(model)
    callback.on_train_batch_end(0, {"loss": 1.5})
    with pytest.raises(NonFiniteError, match="the loss"):
        callback.on_train_batch_end(1, {"loss": float("nan")})
    assert model.stop_training
    with pytest.raises(ValueError, match="`every`"):
        FiniteCheck(every=0)


class _PoisonMemoryAfter(keras.callbacks.Callback):
    """Writes a NaN into one memory variable at the end of train batch `at`."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.at:
            poison(float_memory(self.model)[0][1])


def test_finite_check_stops_fit_and_names_the_memory_variable():
    model = small_model()
    model.compile()
    documents = [np.arange(3, 3 + 40) % 250 + 3 for _ in range(B)]
    stream = SegmentStream(documents, batch_size=B, segment_length=S)
    model.fit(stream, epochs=1, steps_per_epoch=2, verbose=0, callbacks=[FiniteCheck()])
    path = float_memory(model)[0][0]
    model.reset_state()
    with pytest.raises(NonFiniteError, match=f"after step 2 .*memory state variable `{path}`"):
        model.fit(
            stream,
            epochs=1,
            verbose=0,
            callbacks=[_PoisonMemoryAfter(at=1), FiniteCheck(every=2)],
        )
    assert model.stop_training
