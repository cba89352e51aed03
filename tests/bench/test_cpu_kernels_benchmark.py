"""`benchmarks/cpu_kernels.py` times all the work it counts in its GFLOP/s."""

import keras
import pytest

from tests.bench.scripts import run_python_benchmark


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="the benchmark runs on JAX")
def test_the_gradient_cases_compile_the_three_products_they_count():
    # With a loss that did not need the product, XLA dropped the forward product
    # and these cases' GFLOP/s counted three products where two ran.
    records = run_python_benchmark(
        "cpu_kernels.py", "--case", "dense_grad", "--case", "attention_grad", "--repeats", "1"
    )
    counted = [r for r in records if "products_compiled" in r]
    assert {r["case"] for r in counted} == {"dense_grad", "attention_grad"}
    assert len(counted) == 9  # four forms of each, and the dense layer on flat rows
    for record in counted:
        assert record["products_compiled"] == 3, record
        assert record["ms"] > 0
