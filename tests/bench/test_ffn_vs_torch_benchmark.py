"""`benchmarks/ffn_vs_torch.py` runs, and what it times side by side computes the same thing."""

import keras
import pytest

from tests.bench.scripts import run_python_benchmark


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="the benchmark runs on JAX")
def test_the_timed_networks_and_products_agree():
    records = run_python_benchmark("ffn_vs_torch.py", "--repeats", "1")
    by_case = {}
    for record in records:
        by_case.setdefault(record["case"], []).append(record)
        assert record["ms"] > 0 and record["calls"] == 1
    keras_ffn, torch_ffn = by_case["ffn"]
    assert keras_ffn["variant"].startswith("keras_memory") and torch_ffn["variant"].startswith(
        "torch"
    )
    # All six products are computed on the JAX side (a loss that does not need the
    # outputs let XLA drop one), and PyTorch's backward pass reaches the input and both kernels.
    assert keras_ffn["products_compiled"] == 6
    assert torch_ffn["gradients"] == 3
    # The same weights give the same outputs, to bfloat16's precision: one network timed twice.
    assert keras_ffn["outputs_difference_from_torch"] < 0.01
    # Every form of the kernel's gradient is the same product (the float32 accumulations to
    # within their rounding, PyTorch's bfloat16 result to within bfloat16's).
    forms = by_case["kernel_grad"]
    assert len(forms) == 10
    for form in forms:
        bound = 1e-2 if form["variant"].startswith("torch") else 1e-4
        assert form["difference_from_exact"] < bound, form
    # Each dense layer's product and gradient products, as the layer gives them to XLA, are
    # PyTorch's products (to bfloat16's rounding).
    products = by_case["products"]
    assert len(products) == 8
    ours = [r for r in products if r["variant"].startswith("jax")]
    assert [r["products_compiled"] for r in ours] == [1, 2, 1, 2]  # forward, backward, twice
    for record in ours:
        assert record["difference_from_torch"] < 0.01, record
