import keras
import numpy as np
import pytest

from keras_memory.optimizers import Sophia
from tests.conftest import to_numpy

SHAPES = [(3, 4), (5,)]


def numpy_sophia(params, gradients, lr, beta_1, beta_2, rho, epsilon, interval, weight_decay):
    """The update rule, written out: decoupled decay, momentum, Hessian EMA every k, clip."""
    params = [p.copy() for p in params]
    m = [np.zeros_like(p) for p in params]
    h = [np.zeros_like(p) for p in params]
    clipped = []
    for t, grads in enumerate(gradients):
        for i, g in enumerate(grads):
            params[i] = params[i] - lr * weight_decay * params[i]
            m[i] = beta_1 * m[i] + (1 - beta_1) * g
            if t % interval == 0:
                h[i] = beta_2 * h[i] + (1 - beta_2) * g * g
            raw = m[i] / np.maximum(rho * h[i], epsilon)
            clipped.append(np.abs(raw) > 1)
            step = np.clip(raw, -1, 1)
            params[i] = params[i] - lr * step
    return params, np.concatenate([c.ravel() for c in clipped])


def test_steps_match_a_numpy_reference():
    rng = np.random.default_rng(0)
    initial = [rng.standard_normal(s).astype("float32") for s in SHAPES]
    gradients = [
        [rng.standard_normal(s).astype("float32") * 10 ** rng.uniform(-3, 1) for s in SHAPES]
        for _ in range(12)
    ]
    options = dict(beta_1=0.9, beta_2=0.95, rho=0.5, epsilon=1e-12, weight_decay=0.1)
    optimizer = Sophia(learning_rate=0.01, hessian_update_interval=3, **options)
    variables = [keras.Variable(p) for p in initial]
    for grads in gradients:
        optimizer.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in grads], variables))
    expected, clipped = numpy_sophia(initial, gradients, 0.01, interval=3, **options)
    for variable, want in zip(variables, expected):
        np.testing.assert_allclose(to_numpy(variable), want, rtol=1e-5, atol=1e-6)
    # Both regimes occurred: clipped sign steps and unclipped Newton-like ones.
    assert 0.1 < clipped.mean() < 0.9, clipped.mean()
    assert int(to_numpy(optimizer.iterations)) == 12


def test_a_given_hessian_estimate_enters_the_average():
    variable = keras.Variable(np.ones(4, "float32"))
    optimizer = Sophia(
        learning_rate=0.1, hessian_estimate="given", weight_decay=None, rho=1.0, beta_2=0.5
    )
    optimizer.build([variable])
    optimizer.set_hessian_estimate([np.full(4, 8.0, "float32")])
    optimizer.apply_gradients([(keras.ops.convert_to_tensor(np.full(4, 2.0, "float32")), variable)])
    # m = 0.035 * 2 = 0.07; h = 0.5 * 8 = 4; step = 0.07 / 4 (inside the clip).
    np.testing.assert_allclose(to_numpy(variable), 1 - 0.1 * 0.07 / 4, rtol=1e-5)
    with pytest.raises(ValueError, match="one tensor per trainable variable"):
        optimizer.set_hessian_estimate([])


def test_trains_a_model_and_round_trips_its_config():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5], [3.0]], "float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=Sophia(learning_rate=0.1, weight_decay=None), loss="mse")
    losses = model.fit(x, y, epochs=40, batch_size=16, verbose=0).history["loss"]
    assert losses[-1] < 0.1 * losses[0], losses
    optimizer = Sophia(rho=0.02, hessian_update_interval=5)
    clone = Sophia.from_config(optimizer.get_config())
    assert clone.get_config() == optimizer.get_config()
    for bad in (
        dict(beta_1=1.0),
        dict(rho=0.0),
        dict(hessian_update_interval=0),
        dict(hessian_estimate="hutchinson"),
    ):
        with pytest.raises(ValueError):
            Sophia(**bad)
