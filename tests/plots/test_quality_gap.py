"""The quality sweep's gap figure pairs each memory with the `xl` of its own run."""

from keras_memory.plots import plot_quality_gap, quality_gaps


def record(model, bits, seed=0, steps=600, params=100, **extra):
    return {
        "model": model,
        "corpus": "code",
        "preset": "tiny",
        "steps": steps,
        "seed": seed,
        "validation_bits_per_byte": bits,
        "trainable_params": params,
        **extra,
    }


def test_each_memory_is_compared_with_the_latest_xl_of_its_point():
    records = [
        record("xl", 2.80),  # an old run
        record("memorizing_2k", 2.90),
        record("xl", 2.70),  # a later run of the same point
        record("memorizing_2k", 2.75, overrides={"memory_gate_bias": -2.0}),
        record("xl", 2.72, seed=1),
        record("memorizing_2k", 2.71, seed=1),
        record("xl", 2.60, overrides={"num_layers": 4}, params=200),
        record("memorizing_2k", 2.61, overrides={"num_layers": 4}),
        record("memorizing_2k", 2.58, pretrain_steps=600, steps=300),  # no xl twin: left out
        record("local", 2.85),
    ]
    gaps = {(g["lever"], g["seed"], g["steps"], g["xl_params"]): g for g in quality_gaps(records)}
    assert set(gaps) == {
        ("memorizing_2k", 0, 600, 100),
        ("memorizing_2k memory_gate_bias=-2.0", 0, 600, 100),
        ("memorizing_2k", 1, 600, 100),
        ("memorizing_2k", 0, 600, 200),
        ("local", 0, 600, 100),
    }
    assert abs(gaps["memorizing_2k", 0, 600, 100]["gap"] - 0.10) < 1e-9
    assert abs(gaps["memorizing_2k memory_gate_bias=-2.0", 0, 600, 100]["gap"] - 0.05) < 1e-9
    assert abs(gaps["memorizing_2k", 1, 600, 100]["gap"] + 0.01) < 1e-9
    assert abs(gaps["memorizing_2k", 0, 600, 200]["gap"] - 0.01) < 1e-9
    # The spread of xl over seeds at the tiny point: its latest seed 0 (2.70) and seed 1.
    assert abs(gaps["memorizing_2k", 0, 600, 100]["xl_spread"] - 0.02) < 1e-9
    assert gaps["memorizing_2k", 0, 600, 200]["xl_spread"] is None


def test_the_fine_tuning_route_counts_all_its_steps(tmp_path):
    records = [
        record("xl", 2.70, pretrain_steps=600, steps=300),
        record("memorizing_2k", 2.69, pretrain_steps=600, steps=300),
        record("xl", 2.75),
        record("memorizing_2k", 2.80),
    ]
    (tuned, scratch) = quality_gaps(records)
    assert tuned["lever"] == "memorizing_2k after 600 xl steps" and tuned["steps"] == 900
    assert scratch["lever"] == "memorizing_2k" and scratch["steps"] == 600
    path = plot_quality_gap(records, str(tmp_path / "gap.png"))
    assert (tmp_path / "gap.png").stat().st_size > 10_000 and path.endswith("gap.png")
