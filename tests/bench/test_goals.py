"""`keras_memory.bench.goals`: the speed goals read from benchmark records."""

import json

from keras_memory.bench import goals


def _speed(kind, tokens_per_s, **extra):
    return {"benchmark": "speed", "kind": kind, "tokens_per_s": tokens_per_s, **extra}


def _peer(kind, tokens_per_s=None, **extra):
    record = {"benchmark": "speed", "peer": f"{kind}_pytorch==1", "kind": kind, **extra}
    if tokens_per_s is not None:
        record["tokens_per_s"] = tokens_per_s
    return record


def test_ratios_compare_ours_with_the_mean_of_the_peers_runs_and_the_block_ceiling():
    records = [
        _peer("block_recurrent", 100.0),
        _speed("xl", 800.0, device="H100", config="p150", precision="mixed_bfloat16"),
        _speed("block_recurrent", 500.0),
        {"benchmark": "ceiling", "attention": "block", "tokens_per_s": 1000.0},
        # Another shape of the ceiling is not what the XL goal is read against.
        {"benchmark": "ceiling", "attention": "window2", "tokens_per_s": 10.0},
        _peer("block_recurrent", 150.0),
    ]
    xl = goals.ratio_row(records, *goals.RATIO_GOALS[0])
    assert xl["ratio"] == 0.8 and xl["status"] == "met"
    recurrent = goals.ratio_row(records, *goals.RATIO_GOALS[1])
    assert recurrent["against"] == 125.0
    assert recurrent["ratio"] == 4.0 and recurrent["status"] == "met"
    records[2] = _speed("block_recurrent", 499.0)
    assert goals.ratio_row(records, *goals.RATIO_GOALS[1])["status"] == "not met"


def test_a_missing_or_failed_peer_is_not_measured_and_says_why():
    records = [
        _speed("memorizing", 900.0, memory_size=65536),
        _peer("memorizing", failed="TypeError: Got unsupported ScalarType BFloat16"),
    ]
    row = goals.ratio_row(records, *goals.RATIO_GOALS[2])
    assert row["ratio"] is None
    assert row["status"].startswith("not measured (no peer record; the peer: TypeError")
    # A peer of another memory size is not this goal's.
    records.append(_peer("memorizing", 10.0, memory_size=16384))
    assert goals.ratio_row(records, *goals.RATIO_GOALS[2])["status"].startswith("not measured")
    records.append(_peer("memorizing", 10.0, memory_size=65536))
    assert goals.ratio_row(records, *goals.RATIO_GOALS[2])["ratio"] == 90.0


def test_the_command_prints_every_goal_and_refuses_missing_files(tmp_path, capsys):
    path = tmp_path / "speed.jsonl"
    lines = [
        json.dumps(_speed("xl", 800.0, mfu=0.41, peak_device_bytes=2**31)),
        json.dumps(_speed("xl", 900.0, precision="float32")),
        "not json",
    ]
    path.write_text("\n".join(lines) + "\n")
    assert goals.main([str(path)]) == 0
    table = capsys.readouterr().out
    for goal, *_ in goals.RATIO_GOALS:
        assert goal in table
    assert "| xl |  | 800 | 41.0% | 2.0 GiB |" in table
    assert "| xl | float32 | 900 |  |  |" in table  # each record says its precision
    assert table.count("not measured") == 3
    assert goals.main([str(path), str(tmp_path / "missing.jsonl")]) == 2
    assert capsys.readouterr().err.strip() == f"goals: no such file: {tmp_path / 'missing.jsonl'}"


def test_work_per_second_is_compared_where_both_sides_report_it():
    records = [
        _speed("block_recurrent", 500.0, model_tflops_per_s=0.2),
        _peer("block_recurrent", 600.0, model_tflops_per_s=0.1),
        _peer("block_recurrent", 600.0, model_tflops_per_s=0.3),
    ]
    assert goals.flops_rows(records)[-1] == "| block_recurrent | 0.200 | 0.200 | 1.00x |"
    assert goals.flops_rows(records[:1]) == []


def test_only_like_records_are_compared_and_other_lines_do_not_break_the_table(tmp_path):
    records = [
        _speed("block_recurrent", 500.0, precision="float32"),
        _speed("block_recurrent", 900.0, precision="mixed_bfloat16"),
        _peer("block_recurrent", 100.0, precision="float32"),
        _peer("block_recurrent", 300.0, precision="mixed_bfloat16"),
    ]
    row = goals.ratio_row(records, *goals.RATIO_GOALS[1])
    assert (row["ours"], row["against"]) == (500.0, 100.0)
    path = tmp_path / "mixed.jsonl"
    lines = [
        json.dumps(records[0]),
        '{"benchmark": "speed", "kind": "xl", "tokens_per',  # a line cut off by a timeout
        json.dumps({"benchmark": "knn_retrieval", "mode": "scann-large", "entries": 10}),
        json.dumps(
            {
                "benchmark": "knn_retrieval",
                "mode": "lookup",
                "method": "exact",
                "memory_size": 65536,
                "ms_median": 1.5,
                "recall_at_k": 1.0,
            }
        ),
    ]
    path.write_text("\n".join(lines) + "\n")
    table = "\n".join(goals.goal_table(goals.read_records([str(path)])))
    assert "| exact | 65,536 | 1.5 | 1.0 |" in table
    assert "scann" not in table
