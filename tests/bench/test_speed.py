import json
import textwrap

import keras
import numpy as np
import pytest

from keras_memory.backend.allocator import host_allocator
from keras_memory.bench.speed import (
    measure_training_speed,
    mfu,
    model_flops_per_token,
    peer_options,
    resolve_config,
    run_peer,
)
from keras_memory.cli import main
from keras_memory.models import MemoryLM

# Stand-ins for lucidrains' packages with their constructors and call
# signatures: enough to run the peers' training loops end to end.
FAKE_PEERS = {
    "block_recurrent_transformer_pytorch": """
        import torch

        class BlockRecurrentTransformer(torch.nn.Module):
            def __init__(self, num_tokens, dim, **options):
                super().__init__()
                self.embedding = torch.nn.Embedding(num_tokens, dim)
                self.options = options

        class RecurrentTrainerWrapper(torch.nn.Module):
            def __init__(self, model, xl_memories_dropout, state_dropout):
                super().__init__()
                self.model = model

            def forward(self, tokens):
                assert tokens.shape[1] == self.model.options["block_width"] * 2 + 1
                return self.model.embedding(tokens).square().mean()
    """,
    "memorizing_transformers_pytorch": """
        import contextlib
        import torch

        class MemorizingTransformer(torch.nn.Module):
            def __init__(self, num_tokens, dim, **options):
                super().__init__()
                self.embedding = torch.nn.Embedding(num_tokens, dim)

            def knn_memories_context(self, batch_size):
                return contextlib.nullcontext("memories")

            def forward(self, tokens, knn_memories, xl_memories, labels):
                assert knn_memories == "memories" and tokens.shape == labels.shape
                return self.embedding(tokens).square().mean(), None
    """,
}


@pytest.fixture
def fake_peers(tmp_path):
    for name, source in FAKE_PEERS.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    return str(tmp_path)


def test_model_flops_are_six_per_weight_plus_the_attention_over_the_window():
    # The convention of the plain Keras ceiling (keras_memory.bench.ceiling): 6 N + 12 L d W.
    assert model_flops_per_token(1000, 2, 64, 32) == 6 * 1000 + 12 * 2 * 64 * 32


def test_mfu_needs_a_known_gpu_and_bfloat16():
    assert mfu(494.5e12, "NVIDIA H100 80GB HBM3", "mixed_bfloat16") == pytest.approx(0.5)
    assert mfu(494.5e12, "NVIDIA H100 80GB HBM3", "float32") is None
    assert mfu(1e12, "cpu", "mixed_bfloat16") is None


def test_configs_are_the_reference_figures_configs():
    preset, options, batch = resolve_config("p150")
    model = MemoryLM.from_preset(preset, kind="xl", **options)
    attention = model.blocks[0].attention
    assert (model.hidden_dim, len(model.blocks), model.vocab_size) == (1024, 12, 32000)
    assert (attention.num_heads, attention.head_dim, attention.window_length) == (16, 64, 512)
    assert (options["segment_length"], batch) == (4096, 8)
    assert resolve_config("d512", batch_size=4)[2] == 4
    with pytest.raises(ValueError, match="`config` must be one of"):
        resolve_config("d513")


def test_peer_options_are_our_config():
    assert peer_options("memorizing", config="d512", memory_size=16384) == [
        "memorizing",
        "--dim=512",
        "--depth=6",
        "--heads=8",
        "--window=512",
        "--segments=4",
        "--batch=2",
        "--memory=16384",
        "--vocab=259",
        "--precision=float32",
    ]
    with pytest.raises(ValueError, match="multiple of `window_length`"):
        peer_options("block_recurrent", config="tiny", segment_length=100)


@pytest.mark.parametrize("kind", ["xl", "memorizing"])
def test_a_measurement_reports_its_model_and_consistent_rates(kind):
    record = measure_training_speed(kind, steps=1, warmup=1, batch_size=2, memory_size=256)
    model = MemoryLM.from_preset("tiny", kind=kind, stateful=True, memory_size=256)
    model.build({"tokens": (2, 128), "reset": (2,)})
    weights = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    assert record["trainable_params"] == weights
    assert record["state_params"] == model.count_params() - weights > 0
    assert record["tokens_per_s"] == pytest.approx(2 * 128 / record["step_time_s"], rel=1e-2)
    flops = model_flops_per_token(weights, 2, 64, 32) * record["tokens_per_s"]
    assert record["model_tflops_per_s"] == pytest.approx(flops / 1e12, rel=1e-2, abs=1e-4)
    assert record["backend"] == keras.backend.backend() and np.isfinite(record["loss"])
    assert ("memory_size" in record) == (kind == "memorizing")
    assert record["peak_host_rss_bytes"] > 0


def test_a_missing_peer_is_skipped_with_the_reason(tmp_path):
    record = run_peer("block_recurrent", peer_path=str(tmp_path), config="tiny")
    if "skipped" not in record:
        pytest.skip("the real peer is installed on this machine")
    assert "not installed" in record["skipped"] and record["kind"] == "block_recurrent"


@pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="the order of the child processes and the peers is the same on every backend, and "
    "a measurement is tested on each above; it runs in the jax pass",
)
def test_speed_runs_each_kind_apart_between_the_peers(fake_peers, tmp_path, capsys):
    output = tmp_path / "speed.jsonl"
    args = ["bench", "speed", "--kind", "block_recurrent,memorizing", "--steps=1"]
    args += ["--warmup=0", "--batch-size=2", "--segment-length=64", "--memory-size=128"]
    main([*args, "--peers", "--peer-path", fake_peers, "--output", str(output)])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert records == [json.loads(line) for line in output.read_text().splitlines()]
    order = [(r.get("when", "ours"), r["kind"]) for r in records]
    peers = ("block_recurrent", "memorizing")
    assert order == [
        *(("before", k) for k in peers),
        *(("ours", k) for k in peers),
        *(("after", k) for k in peers),
    ]
    for record in records:
        assert record["tokens_per_s"] > 0 and record["segment_length"] == 64
        assert record["batch_size"] == 2 and record["window_length"] == 32
    assert {r["memory_size"] for r in records if r["kind"] == "memorizing"} == {128}


@pytest.mark.parametrize(
    "option,message",
    [
        ("--kind=xl,nope", "--kind"),
        ("--steps=0", "--steps"),
        ("--config=big", "config"),
        ("--kind=xl,melodi --num-key-value-heads=1", "--num-key-value-heads: the melodi kind"),
    ],
)
def test_bad_speed_options_are_one_clear_error(option, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "speed", *option.split()])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_the_allocator_is_named_from_ld_preload(monkeypatch):
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4")
    assert host_allocator() == "tcmalloc"
    # The command's own preload goes first, before what the user preloaded.
    monkeypatch.setenv("LD_PRELOAD", "/lib/libtcmalloc_minimal.so.4 /opt/libother.so")
    assert host_allocator() == "tcmalloc"
    monkeypatch.delenv("LD_PRELOAD")
    assert host_allocator() == "default"
