"""The same weights and inputs give the same outputs on jax, tensorflow and torch.

Every public layer and model is an entry of `tests/parity_registry.py`; the
registry runs once per backend, in one subprocess each, and tensorflow and
torch are compared with jax.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_memory import layers, models
from tests.parity_registry import REGISTRY, SEPARATOR

BACKENDS = ("jax", "tensorflow", "torch")
# float32, absolute and relative. The registry's outputs are O(1-10); the
# backends differ by float32 rounding (reduction order, transcendental
# kernels): at most ~5e-6, a fifth of this tolerance. The kNN entries'
# inputs are continuous random draws, so their top-k has no near-ties.
TOLERANCE = 1e-5
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The abstract bases: nothing to run.
BASES = {"MemoryLayer", "SegmentLM"}


def run_registry_on_every_backend(directory):
    """`{backend: {key: array}}`, the registry run in one subprocess per backend.

    The three run side by side: jax, which compiles every new op, is the
    slowest, and the others finish in its shadow.
    """
    processes = {}
    try:
        for backend in BACKENDS:
            with open(os.path.join(directory, f"{backend}.log"), "w") as log:
                processes[backend] = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tests.parity_registry",
                        os.path.join(directory, f"{backend}.npz"),
                    ],
                    cwd=ROOT,
                    env={**os.environ, "KERAS_BACKEND": backend},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        for process in processes.values():
            process.wait(timeout=600)
    finally:
        for process in processes.values():
            process.kill()  # a no-op on a finished one
    results = {}
    for backend, process in processes.items():
        if process.returncode != 0:
            with open(os.path.join(directory, f"{backend}.log")) as log:
                pytest.fail(f"The {backend} run failed:\n{log.read()[-3000:]}")
        with np.load(os.path.join(directory, f"{backend}.npz")) as saved:
            results[backend] = dict(saved)
    return results


def by_entry(arrays):
    """`{entry: {array: value}}` from the saved `"<entry>::<array>"` keys."""
    entries = {}
    for key, value in arrays.items():
        entry, name = key.split(SEPARATOR)
        entries.setdefault(entry, {})[name] = value
    return entries


def mismatch(backend, entry, name, got, expected):
    """Why `got` (on `backend`) differs from jax's `expected`, or None."""
    where = f"{backend} vs jax: registry entry {entry!r}, array {name!r}"
    try:
        if expected.dtype.kind in "US":
            np.testing.assert_array_equal(got, expected, err_msg=where)
        else:
            np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=TOLERANCE, err_msg=where)
    except AssertionError as error:
        return str(error)
    return None


@pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="starts all three backends itself; runs once, in the jax pass",
)
def test_every_registry_entry_gives_the_same_outputs_on_every_backend(tmp_path):
    results = {b: by_entry(arrays) for b, arrays in run_registry_on_every_backend(tmp_path).items()}
    failures = []
    for backend, entries in results.items():
        assert set(entries) == set(REGISTRY), f"{backend} ran {sorted(entries)}"
        failures += [
            f"registry entry {entry!r} raised on {backend}:\n{arrays['error']}"
            for entry, arrays in entries.items()
            if "error" in arrays
        ]
    assert not failures, "\n\n".join(failures)
    reference = results["jax"]
    for entry, expected in reference.items():
        assert str(expected["class"]) in REGISTRY[entry].covers, (
            f"registry entry {entry!r} runs a {expected['class']}, not one of the "
            f"names it covers {REGISTRY[entry].covers}"
        )
        assert set(expected) - {"class", "weight_shapes"}, f"{entry!r} returns no outputs"
        for backend in BACKENDS[1:]:
            got = results[backend][entry]
            if set(got) != set(expected):
                failures.append(
                    f"{backend} vs jax: registry entry {entry!r} returns arrays "
                    f"{sorted(got)}, jax {sorted(expected)}"
                )
                continue
            failures += filter(
                None,
                (
                    mismatch(backend, entry, name, got[name], value)
                    for name, value in expected.items()
                ),
            )
    assert not failures, "\n\n".join(failures)


def test_parity_registry_covers_every_public_layer_and_model_kind():
    public_models = {
        name
        for name in models.__all__
        if isinstance(getattr(models, name), type)
        and issubclass(getattr(models, name), keras.Model)
    }
    public = (set(layers.__all__) | public_models | set(models.MODEL_KINDS)) - BASES
    covered = set().union(*(entry.covers for entry in REGISTRY.values()))
    assert public - covered == set(), "public layers, models or kinds missing from the registry"
    assert covered - public == set(), "registry entries cover names that are not public"
    assert {"MelodiLM", "MemoryLM", "RetrofitLM"} <= covered
