"""The recipes run as a user would run them (few steps)."""

import os
import subprocess
import sys

import keras
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_recipe(name, *args):
    env = {**os.environ, "KERAS_BACKEND": keras.backend.backend(), "PYTHONPATH": ROOT}
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "recipes", name), *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )


@pytest.mark.parametrize("kind", ["xl", "memorizing"])
def test_fit_recipe_trains_and_reports_bits_per_token(tmp_path, kind):
    run = run_recipe(
        "fit.py",
        "--steps",
        "3",
        "--batch-size",
        "2",
        "--kind",
        kind,
        "--memory-size",
        "1024",
        "--workdir",
        str(tmp_path),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "bits_per_token" in run.stdout
    assert os.path.exists(tmp_path / "checkpoint.keras")


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="a JAX-only recipe")
def test_custom_jax_loop_recipe_runs():
    run = run_recipe("custom_loop_jax.py", "--steps", "3", "--batch-size", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "step 2: loss" in run.stdout
