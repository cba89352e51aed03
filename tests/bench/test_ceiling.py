import argparse
import json

import keras
import numpy as np
import pytest

from keras_memory.bench.ceiling import add_arguments, dense_decoder, main, measure_ceiling
from keras_memory.bench.speed import model_flops_per_token
from keras_memory.models import PRESETS

TINY = PRESETS["tiny"]  # d 64, 2 layers, 4 heads of 16, window 32, segment 128


def parse(*argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_the_decoder_has_the_weights_of_its_size():
    model = dense_decoder(TINY, "window2", batch_size=2)
    d, v, f, layers = TINY["hidden_dim"], TINY["vocab_size"], TINY["intermediate_dim"], 2
    width = TINY["num_heads"] * TINY["head_dim"]
    block = 2 * d + 3 * d * width + width * d + 2 * d * f  # norms, q k v, output, feed-forward
    assert model.count_params() == v * d + layers * block + d + d * v
    tokens = np.zeros((2, TINY["segment_length"]), dtype="int32")
    assert model(tokens).shape == (2, TINY["segment_length"], v)


def test_each_query_sees_its_window_or_the_last_window_length_tokens():
    # One layer: the logits that change with token 40 are those of the queries that see it.
    settings = {**TINY, "num_layers": 1}
    rng = np.random.default_rng(0)
    tokens = rng.integers(3, 259, size=(1, 128), dtype=np.int32)
    changed = tokens.copy()
    changed[0, 40] = 3 if tokens[0, 40] != 3 else 4  # in the second window (32..63)
    window2 = dense_decoder(settings, "window2", batch_size=1)
    block = dense_decoder(settings, "block", batch_size=1)
    block.set_weights(window2.get_weights())
    # block: the rest of its window; window2: itself and the 31 tokens after it.
    for model, last in ((block, 63), (window2, 40 + 31)):
        before = keras.ops.convert_to_numpy(model(tokens))
        after = keras.ops.convert_to_numpy(model(changed))
        differs = np.abs(before - after).max(axis=-1)[0] > 1e-6
        assert np.flatnonzero(differs).tolist() == list(range(40, last + 1))


def test_a_segment_of_part_windows_is_one_clear_error():
    with pytest.raises(ValueError, match="multiple of `window_length`"):
        dense_decoder({**TINY, "segment_length": 100}, "block")
    with pytest.raises(ValueError, match="`attention` must be one of"):
        dense_decoder(TINY, "dense")


@pytest.mark.parametrize("attention,keys", [("block", 16), ("window2", 32)])
def test_a_ceiling_record_is_consistent(attention, keys, tmp_path, capsys):
    output = tmp_path / "ceiling.jsonl"
    args = parse(f"--attention={attention}", "--steps=2", "--warmup=1", "--batch-size=2")
    args.output = str(output)
    (record,) = main(args)
    assert json.loads(capsys.readouterr().out) == record == json.loads(output.read_text())
    assert record["benchmark"] == "ceiling" and record["attention"] == attention
    assert (record["batch_size"], record["segment_length"], record["window_length"]) == (2, 128, 32)
    assert record["keys_per_query"] == keys
    model = dense_decoder(TINY, attention, batch_size=2)
    assert record["trainable_params"] == model.count_params()
    assert record["tokens_per_s"] == pytest.approx(2 * 128 / record["step_time_s"], rel=1e-3)
    flops = model_flops_per_token(record["trainable_params"], 2, 64, keys)
    expected = flops * record["tokens_per_s"] / 1e12
    assert record["model_tflops_per_s"] == pytest.approx(expected, rel=1e-2, abs=1e-4)
    assert record["mfu"] is None  # float32, and not on a GPU of known peak
    assert record["backend"] == keras.backend.backend() and np.isfinite(record["loss"])
    assert record["peak_host_rss_bytes"] > 0 and record["precision"] == "float32"


def test_overrides_reach_the_model_and_the_record():
    record = measure_ceiling(
        "block", steps=1, warmup=0, batch_size=1, segment_length=64, window_length=16
    )
    assert (record["segment_length"], record["window_length"]) == (64, 16)
    assert record["keys_per_query"] == 8


def test_bad_step_counts_are_refused():
    with pytest.raises(ValueError, match="--steps"):
        main(parse("--steps=0"))
