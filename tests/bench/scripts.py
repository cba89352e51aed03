"""Running the benchmarks' shell scripts from tests, as a user runs them."""

import os
import subprocess

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
