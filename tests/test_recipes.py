"""The recipes run as a user would run them (few steps)."""

import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_memory.training import checkpoint_path, load_checkpoint

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


@pytest.mark.parametrize("kind", ["xl", "memorizing", "block_recurrent", "melodi"])
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
    assert checkpoint_path(str(tmp_path)) is not None


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="a JAX-only recipe")
def test_custom_jax_loop_recipe_runs():
    run = run_recipe("custom_loop_jax.py", "--steps", "3", "--batch-size", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "step 2: loss" in run.stdout


def recipe_report(run):
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


RETROFIT_TINY = [
    "--steps",
    "8",
    "--batch-size",
    "2",
    "--segment-length",
    "64",
    "--window-length",
    "32",
    "--memory-size",
    "256",
    "--num-neighbors",
    "8",
    "--max-documents",
    "20",
    "--eval-steps",
    "4",
]


def test_retrofit_recipe_starts_as_the_backbone_and_learns(tmp_path):
    run = run_recipe("retrofit.py", *RETROFIT_TINY, "--workdir", str(tmp_path))
    report = recipe_report(run)
    before, after = report["bits_per_token_before"], report["bits_per_token_after"]
    # The zero-initialised memory block is a no-op: the untrained model is the backbone.
    assert before == pytest.approx(report["backbone_bits_per_token"], abs=1e-4)
    assert before == pytest.approx(math.log2(259), abs=0.1)  # random init: near uniform
    # A random byte model learns byte statistics in a few steps (8.0 -> ~5.5 bits).
    assert math.isfinite(after) and after < before - 1.0
    assert checkpoint_path(str(tmp_path)) is not None


def byte_symbols():
    """GPT-2's byte-level BPE alphabet: byte b -> the unicode character standing for it."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    others = [b for b in range(256) if b not in printable]
    codes = {b: b for b in printable} | {b: 256 + i for i, b in enumerate(others)}
    return [chr(codes[b]) for b in range(256)]


def test_retrofit_recipe_loads_a_local_preset_with_its_tokenizer(tmp_path):
    import keras_hub

    # A tiny GPT-2 preset: byte symbols, one merge ("Ġ Ġ": two spaces; keras-hub's
    # TensorFlow BPE refuses an empty merge list) and <|endoftext|>.
    vocabulary = {symbol: i for i, symbol in enumerate(byte_symbols())}
    vocabulary["ĠĠ"] = len(vocabulary)
    vocabulary["<|endoftext|>"] = len(vocabulary)
    tokenizer = keras_hub.tokenizers.GPT2Tokenizer(vocabulary=vocabulary, merges=["Ġ Ġ"])
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=tokenizer.vocabulary_size(),
        num_layers=2,
        num_heads=2,
        hidden_dim=32,
        intermediate_dim=64,
        max_sequence_length=128,
    )
    preset = str(tmp_path / "preset")
    backbone.save_to_preset(preset)
    tokenizer.save_to_preset(preset)

    workdir = tmp_path / "workdir"
    args = ["--preset", preset, "--freeze-backbone", "--workdir", str(workdir)]
    report = recipe_report(run_recipe("retrofit.py", *RETROFIT_TINY, *args))
    before, after = report["bits_per_token_before"], report["bits_per_token_after"]
    assert before == pytest.approx(report["backbone_bits_per_token"], abs=1e-4)
    # The memory block alone trains from its zero start (8.003 -> ~7.97 bits here).
    assert math.isfinite(after) and after < before

    # --freeze-backbone trained the memory block only; the preset's weights are intact.
    import keras_memory.models  # noqa: F401  (registers RetrofitLM for loading)

    model, _ = load_checkpoint(str(workdir))
    assert model.vocab_size == tokenizer.vocabulary_size()
    for trained, pretrained in zip(model.backbone.weights, backbone.weights):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(trained), keras.ops.convert_to_numpy(pretrained)
        )
    kernel = keras.ops.convert_to_numpy(model.memory_attention.output_projection.kernel)
    assert np.abs(kernel).max() > 0  # the memory block trained (it starts at zero)
