"""Running the benchmarks' scripts from tests, as a user runs them."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_benchmark_script(name, settings, timeout=600):
    """Runs `benchmarks/NAME` with `bash`, the environment plus `settings`.

    Returns:
        The `subprocess.CompletedProcess`, stdout and stderr as text.
    """
    return subprocess.run(
        ["bash", os.path.join(REPO, "benchmarks", name)],
        env={**os.environ, **settings},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_python_benchmark(name, *args, timeout=300):
    """Runs `benchmarks/NAME` with this Python on JAX from the repository root.

    Returns:
        The JSON lines it printed, as dicts; fails the test if it exits non-zero.
    """
    run = subprocess.run(
        [sys.executable, os.path.join("benchmarks", name), *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": REPO, "KERAS_BACKEND": "jax"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
