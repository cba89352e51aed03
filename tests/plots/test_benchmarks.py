import os

from keras_memory.plots import plot_memory_footprint, plot_quality, plot_recall

PNG = b"\x89PNG\r\n\x1a\n"


def is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == PNG


def quality_record(corpus, model, kind, bits, state, **extra):
    return {
        "corpus": corpus,
        "model": model,
        "kind": kind,
        "validation_bits_per_byte": bits,
        "state_bytes_per_row": state,
        "steps": 20,
        "preset": "tiny",
        "losses": [3.0 - 0.01 * i - 0.1 * bits for i in range(20)],
        **extra,
    }


def test_a_quality_run_gives_its_two_figures(tmp_path):
    records = [
        record
        for corpus in ("code", "kjv")
        for record in (
            quality_record(corpus, "local", "local", 3.0, 0),
            quality_record(corpus, "xl", "xl", 2.9, 2**16),
            quality_record(corpus, "memorizing_2k", "memorizing", 2.8, 2**20, memory_size=2048),
            quality_record(
                corpus,
                "memorizing_2k_no_cache",
                "memorizing",
                2.85,
                2**19,
                memory_size=2048,
                use_cache=False,
            ),
        )
    ]
    directory = str(tmp_path / "figures")  # created
    paths = plot_quality(records, directory)
    assert [os.path.basename(p) for p in paths] == ["quality_memory.png", "quality_losses.png"]
    assert all(is_png(p) for p in paths)


def test_the_recall_and_footprint_figures_are_written(tmp_path):
    records = [
        {
            "model": model,
            "recall_by_distance": {"16": 1.0, "64": reach, "256": 0.125},
            "chance": 0.125,
            "trained_distance": 64,
            "window_length": 16,
        }
        for model, reach in (("local", 0.125), ("xl", 0.9))
    ]
    path = str(tmp_path / "recall.png")
    assert plot_recall(records, path) == path and is_png(path)
    path = str(tmp_path / "footprint.png")
    footprints = {"xl": 2**20, "memorizing 64k": 2**28}
    assert plot_memory_footprint(footprints, path, title="t") == path and is_png(path)
