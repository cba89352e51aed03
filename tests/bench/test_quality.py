import json
import math

import numpy as np

from keras_memory.bench.quality import train_and_score
from keras_memory.cli import main
from keras_memory.data import Corpus, SegmentStream


def documents(count, length, seed):
    rng = np.random.default_rng(seed)
    return [rng.integers(3, 259, size=length).astype("int32") for _ in range(count)]


def test_every_model_is_scored_on_the_same_validation_tokens():
    train, validation = documents(16, 600, 0), documents(3, 500, 1)
    local = train_and_score("local", train, validation, steps=3, eval_steps=4)
    memory = train_and_score(
        "memory",
        train,
        validation,
        steps=3,
        eval_steps=4,
        options={"kind": "memorizing", "memory_size": 256},
        eval_memory_sizes=(256, 512),
    )
    # The same weights scored with their own memory size give the same figure.
    by_size = memory["bits_per_byte_by_eval_memory_size"]
    assert by_size["256"] == memory["validation_bits_per_byte"]
    assert set(by_size) == {"256", "512"} and "bits_per_byte_by_eval_memory_size" not in local
    stream = SegmentStream(validation, 8, 128)
    scored = sum(int((stream[i][1] != 0).sum()) for i in range(4))
    assert local["validation_tokens"] == memory["validation_tokens"] == scored
    for record in (local, memory):
        assert len(record["losses"]) == 3 and all(math.isfinite(x) for x in record["losses"])
        # Untrained byte models sit near log2(256) = 8 bits.
        assert 6.0 < record["validation_bits_per_byte"] < 10.0
    assert local["state_bytes_per_row"] == 0
    # The kNN memory: 256 entries x 4 heads x 16 dims, keys and values, float32.
    assert memory["state_bytes_per_row"] > 2 * 256 * 4 * 16 * 4
    assert memory["memory_size"] == 256 and memory["kind"] == "memorizing"


def test_bench_quality_command_writes_records_and_figures(tmp_path, capsys):
    output = tmp_path / "quality.jsonl"
    main(
        [
            "bench",
            "quality",
            "--corpora",
            "code",
            "--models",
            "local,xl",
            "--steps",
            "2",
            "--eval-steps",
            "1",
            "--output",
            str(output),
            "--plot",
            str(tmp_path / "figures"),
        ]
    )
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["model"] for r in records] == ["local", "xl"]
    assert all(len(r["losses"]) == 2 and r["corpus"] == "code" for r in records)
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line[:1] == "{"]
    assert [r["model"] for r in printed] == ["local", "xl"] and "losses" not in printed[0]
    assert (tmp_path / "figures" / "quality_memory.png").stat().st_size > 10_000
    assert (tmp_path / "figures" / "quality_losses.png").stat().st_size > 10_000


def test_the_fine_tuning_route_starts_the_memory_model_from_the_trained_xl():
    train, validation = documents(16, 600, 0), documents(3, 500, 1)
    xl = train_and_score("xl", train, validation, steps=3, eval_steps=2)
    # A memory layer with its gate shut computes what the XL layer it
    # replaced computes: with no step after the warm start, the same score.
    shut = {"kind": "memorizing", "memory_size": 256, "local_position_bias": True}
    warm = train_and_score(
        "memory",
        train,
        validation,
        steps=0,
        eval_steps=2,
        pretrain_steps=3,
        options={**shut, "memory_gate_bias": -30.0},
    )
    assert warm["pretrain_steps"] == 3 and "pretrain_steps" not in xl
    assert warm["losses"] == xl["losses"]
    assert abs(warm["validation_bits_per_byte"] - xl["validation_bits_per_byte"]) < 2e-4
    # Fine-tuned on, it trains from there: the stream goes on after step 3.
    tuned = train_and_score(
        "memory", train, validation, steps=2, eval_steps=2, pretrain_steps=3, options=shut
    )
    assert tuned["losses"][:3] == xl["losses"] and len(tuned["losses"]) == 5


def test_a_subword_vocabulary_is_trained_per_corpus_and_scored_per_byte(monkeypatch):
    from keras_memory.bench import quality
    from keras_memory.data import python_source_corpus

    source = python_source_corpus("train", max_documents=12)
    small = {"train": source.texts[:10], "validation": source.texts[10:]}
    monkeypatch.setattr(
        quality,
        "CORPORA",
        {"small": lambda split: Corpus(list(small[split]), small[split], {})},
    )
    (record,) = quality.run_quality(
        corpora=("small",),
        models=("xl",),
        report=lambda record: None,
        tokenizer="bpe",
        vocab_size=400,
        steps=2,
        eval_steps=1,
    )
    assert record["tokenizer"] == "bpe" and 259 < record["vocab_size"] <= 400
    assert record["bytes_per_token"] > 1.2  # merges make tokens longer than a byte
    per_byte = record["validation_bits_per_token"] / record["bytes_per_token"]
    assert abs(record["validation_bits_per_byte"] - per_byte) < 1e-3
    # An untrained model spreads its bets over the whole vocabulary.
    assert abs(record["validation_bits_per_token"] - math.log2(record["vocab_size"])) < 1.5
