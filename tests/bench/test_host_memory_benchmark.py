"""`benchmarks/host_memory.py` runs: its quick mode, on the parts that take seconds."""

import json
import os
import subprocess
import sys

import keras
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="the benchmark runs on JAX")
def test_the_rows_part_times_one_thread_and_every_core():
    run = subprocess.run(
        [sys.executable, "benchmarks/host_memory.py", "--quick", "--parts", "rows"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT, "KERAS_BACKEND": "jax"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    records = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert [r["threads"] for r in records] == sorted({1, os.cpu_count()})
    for record in records:
        assert record["part"] == "rows" and record["rows"] == 2 and record["entries"] == 4096
        assert record["ms_median"] > 0 and record["build_s"] >= 0
        assert len(record["ms_all"]) == 2
