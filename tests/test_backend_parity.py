"""The same weights and inputs give the same outputs on jax, tensorflow and torch."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

BACKENDS = ("jax", "tensorflow", "torch")
TOLERANCE = 1e-5  # float32, absolute and relative

SCRIPT = """
import sys
import numpy as np
from keras.ops import convert_to_numpy
from keras_memory.models import MemoryLM

model = MemoryLM.from_preset(
    "tiny", kind="xl", hidden_dim=16, num_layers=2, num_heads=2, head_dim=8,
    intermediate_dim=32, window_length=8,
)
rng = np.random.default_rng(0)
tokens = rng.integers(3, 259, size=(2, 32)).astype("int32")
model({"tokens": tokens[:, :16]})
for weight in model.weights:
    weight.assign(rng.normal(0, 0.3, weight.shape).astype("float32"))
state, outputs = None, []
for i, segment in enumerate((tokens[:, :16], tokens[:, 16:])):
    reset = np.array([i == 0, True])
    logits, state = model({"tokens": segment, "reset": reset}, state=state)
    outputs.append(convert_to_numpy(logits))
np.savez(
    sys.argv[1], logits=np.stack(outputs), paths=np.array([w.path for w in model.weights]),
    cache=convert_to_numpy(state[1]["keys"]),
)
"""


@pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="starts all three backends itself; runs once, in the jax pass",
)
def test_same_weights_same_logits_on_every_backend(tmp_path):
    results = {}
    for backend in BACKENDS:
        out = os.path.join(tmp_path, f"{backend}.npz")
        env = {**os.environ, "KERAS_BACKEND": backend}
        run = subprocess.run(
            [sys.executable, "-c", SCRIPT, out], env=env, capture_output=True, text=True
        )
        assert run.returncode == 0, f"{backend} failed:\n{run.stderr[-3000:]}"
        results[backend] = np.load(out)
    reference = results["jax"]
    for backend in BACKENDS[1:]:
        np.testing.assert_array_equal(results[backend]["paths"], reference["paths"])
        for name in ("logits", "cache"):
            np.testing.assert_allclose(
                results[backend][name],
                reference[name],
                atol=TOLERANCE,
                rtol=TOLERANCE,
                err_msg=f"{backend} vs jax: {name}",
            )
