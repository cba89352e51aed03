import argparse
import json

import keras
import numpy as np
import pytest

from keras_memory.bench.generation import (
    add_arguments,
    build_model,
    main,
    measure_generation,
    memory_size_for,
    model_options,
    random_prompts,
)
from keras_memory.bench.segment_rerun import greedy_rerun

SMALL = dict(
    hidden_dim=16, num_layers=2, num_heads=2, head_dim=8, intermediate_dim=32, window_length=8
)
SEGMENT = 16


def parse(*argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def spread_weights(model, seed=0):
    """Larger random weights: an untrained model's greedy tokens repeat one id otherwise."""
    rng = np.random.default_rng(seed)
    for weight in model.trainable_weights:
        noise = rng.normal(0.0, 2.0, weight.shape).astype("float32")
        weight.assign(keras.ops.convert_to_numpy(weight) + noise)


@pytest.mark.parametrize(
    "kind,options",
    [("xl", {}), ("memorizing", {"memory_size": 2 * SEGMENT, "num_neighbors": 4})],
)
def test_the_decoder_draws_the_tokens_of_the_whole_segment_baseline(kind, options):
    # 10 prompt tokens and 14 new ones cross a segment's end: the memorizing
    # kind writes its memory there (the decoder's second read of the segment).
    model = build_model(kind, **model_options(kind, SEGMENT, **SMALL, **options))
    spread_weights(model)
    prompts = random_prompts(model.vocab_size, 2, 10)
    rows = model.generate(
        list(prompts),
        max_new_tokens=14,
        stop_token_ids=None,
        sampler="greedy",
        segment_length=SEGMENT,
    )
    decoded = np.stack([row[10:] for row in rows])
    baseline, seconds = greedy_rerun(model, prompts, SEGMENT, 14)
    assert baseline.shape == (2, 14) and baseline.dtype == np.int32 and len(seconds) == 14
    np.testing.assert_array_equal(decoded, baseline)
    assert all(len(set(row.tolist())) >= 4 for row in baseline)  # not one repeated id


def test_a_record_has_the_fields_of_the_issue():
    record, ids = measure_generation(
        "xl", 2, SEGMENT, new_tokens=6, prompt_length=10, baseline_tokens=6, repeats=1, **SMALL
    )
    assert ids["generate"].shape == ids["baseline"].shape == (2, 6)
    assert record["baseline_agrees"] is True
    assert record["benchmark"] == "generate" and record["kind"] == "xl"
    assert (record["batch_size"], record["segment_length"], record["window_length"]) == (2, 16, 8)
    assert record["decode_unit"] == 8 and record["memory_size"] is None
    assert record["tokens_per_s"] == pytest.approx(2e3 / record["per_token_ms"], rel=1e-3)
    ratio = record["per_token_ms"] / record["segment_forward_ms"]
    assert record["per_token_over_segment_forward"] == pytest.approx(ratio, rel=1e-2)
    speedup = record["baseline_per_token_ms"] / record["per_token_ms"]
    assert record["speedup_vs_baseline"] == pytest.approx(speedup, rel=1e-2)
    assert record["backend"] == keras.backend.backend() and record["device"] == "cpu"
    assert record["hidden_dim"] == 16 and record["date"] and record["first_token_ms"] > 0


def test_the_command_prints_one_line_per_setting(tmp_path, capsys):
    # local re-reads the whole segment: its decoding unit is the segment.
    output = tmp_path / "generate.jsonl"
    args = parse(
        "--kinds=local",
        "--batch-sizes=1",
        "--segment-lengths=32",
        "--new-tokens=3",
        "--prompt-length=4",
        "--baseline-tokens=0",
        "--repeats=1",
        f"--output={output}",
    )
    (record,) = main(args)
    assert json.loads(capsys.readouterr().out) == record == json.loads(output.read_text())
    assert record["decode_unit"] == 32 and record["window_length"] == 32
    assert record["baseline_per_token_ms"] is None and record["speedup_vs_baseline"] is None
    assert record["baseline_agrees"] is None


def test_memory_sizes_and_bad_flags():
    assert [memory_size_for(s) for s in (128, 512, 2048, 3000, 8192)] == [
        4096,
        4096,
        4096,
        6000,
        8192,
    ]
    assert model_options("xl", 128) == {}
    assert model_options("memorizing_dense", 2048)["memory_size"] == 4096
    with pytest.raises(ValueError, match="--kinds"):
        main(parse("--kinds=xl,nope"))
    with pytest.raises(SystemExit):
        parse("--batch-sizes=0")
