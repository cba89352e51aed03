"""`benchmarks/memory_fill.py` runs, and its two models (empty chunks skipped or not) agree."""

import json
import os
import subprocess
import sys

import keras
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="the benchmark runs on JAX")
def test_skipping_empty_chunks_leaves_the_losses_as_they_were():
    # tiny: segments of 128 into 16,384 entries, so the second chunk of 8,192 stays empty
    # and the skipping model never scores it.
    run = subprocess.run(
        [sys.executable, "benchmarks/memory_fill.py", "--config", "tiny"]
        + ["--memory-size", "16384", "--steps", "3"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT, "KERAS_BACKEND": "jax"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    records = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert [r["entries_per_row_before"] for r in records] == [128, 256]
    for record in records:
        assert record["every_chunk_loss"] == record["skip_empty_loss"]
        assert record["every_chunk_step_s"] > 0 and record["skip_empty_step_s"] > 0
