"""`benchmarks/memory_fill.py` runs, and its two models (empty chunks skipped or not) agree."""

import keras
import pytest

from tests.bench.scripts import run_python_benchmark


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="the benchmark runs on JAX")
def test_skipping_empty_chunks_leaves_the_losses_as_they_were():
    # tiny: segments of 128 into 16,384 entries, so the second chunk of 8,192 stays empty
    # and the skipping model never scores it.
    records = run_python_benchmark(
        "memory_fill.py", "--config", "tiny", "--memory-size", "16384", "--steps", "3"
    )
    assert [r["entries_per_row_before"] for r in records] == [128, 256]
    for record in records:
        assert record["every_chunk_loss"] == record["skip_empty_loss"]
        assert record["every_chunk_step_s"] > 0 and record["skip_empty_step_s"] > 0
