"""`benchmarks/gpu_quality.sh` runs at the tiny size on the CPU, so it cannot rot."""

import json
import os
import sys

import keras
import pytest

from tests.bench.scripts import run_benchmark_script


@pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="the script's shell logic is the same on every backend, and `bench quality` is "
    "tested on each in tests/bench/test_quality.py; it runs in the jax pass",
)
def test_the_gpu_quality_script_runs_its_comparison_at_the_tiny_size(tmp_path):
    output = tmp_path / "quality.jsonl"
    command = os.path.join(os.path.dirname(sys.executable), "keras-memory")
    settings = {
        "KERAS_MEMORY": command,
        "KERAS_BACKEND": keras.backend.backend(),
        "PRESET": "tiny",
        "MODELS": "xl,memorizing_2k",
        "TOKENIZER": "bytes",
        "STEPS": "2",
        "EVAL_STEPS": "1",
        "OUTPUT": str(output),
    }
    done = run_benchmark_script("gpu_quality.sh", settings)
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["model"] for r in records] == ["xl", "memorizing_2k"]
    assert all(r["preset"] == "tiny" and r["steps"] == 2 for r in records)
    assert all(r["backend"] == keras.backend.backend() for r in records)
    assert f"wrote {output}" in done.stdout
