"""`benchmarks/host_memory.py` runs: its quick mode, on the parts that take seconds."""

import os

import keras
import pytest

from tests.bench.scripts import run_python_benchmark


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="the benchmark runs on JAX")
def test_the_rows_part_times_one_thread_and_every_core():
    records = run_python_benchmark("host_memory.py", "--quick", "--parts", "rows")
    assert [r["threads"] for r in records] == sorted({1, os.cpu_count()})
    for record in records:
        assert record["part"] == "rows" and record["rows"] == 2 and record["entries"] == 4096
        assert record["ms_median"] > 0 and record["build_s"] >= 0
        assert len(record["ms_all"]) == 2
