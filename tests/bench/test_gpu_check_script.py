"""`benchmarks/gpu_check.sh` runs at the tiny size on the CPU, so it cannot rot."""

import json
import sys

import keras
import pytest

from tests.bench.scripts import run_benchmark_script


@pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="the script's shell logic is the same on every backend, and its benchmarks are "
    "tested on each in tests/bench; it runs in the jax pass, the backend a GPU run uses",
)
def test_the_gpu_check_script_times_every_part_and_prints_the_goal_table(tmp_path):
    settings = {
        "PYTHON": sys.executable,
        "KERAS_BACKEND": keras.backend.backend(),
        "CONFIG": "tiny",
        # One kind with a peer keeps the run short and still runs the peers' part.
        "KINDS": "block_recurrent",
        "STEPS": "1",
        "WARMUP": "1",
        # The peers are not installed in CI: their lines say `skipped`.
        "PEER_STEPS": "1",
        "KNN_SIZES": "1024",
        "KNN_METHODS": "exact",
        "GENERATE_PRESET": "tiny",
        "GENERATE_KINDS": "xl",
        "GENERATE_SEGMENT": "64",
        # The GPU's part limits are sized for a GPU; a loaded CI machine gets room.
        **{f"{part}_TIMEOUT": "600" for part in ("SPEED", "CEILING", "KNN", "GENERATE")},
        # No wheels: the Python running the tests has what the script needs.
        "WHEELS": str(tmp_path / "wheels"),
        "SITE": str(tmp_path / "site"),
        "OUTPUT_DIR": str(tmp_path / "out"),
    }
    done = run_benchmark_script("gpu_check.sh", settings, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "stopped" not in done.stderr, done.stderr[-3000:]
    out = tmp_path / "out"
    records = {
        name: [json.loads(line) for line in (out / f"{name}.jsonl").read_text().splitlines()]
        for name in ("speed", "ceiling", "knn", "generate")
    }
    ours = [r for r in records["speed"] if "peer" not in r]
    assert [r["kind"] for r in ours] == ["block_recurrent"]
    peers = [r for r in records["speed"] if "peer" in r]
    assert [r["when"] for r in peers] == ["before", "after"]
    assert all(r["config"] == "tiny" and r["tokens_per_s"] > 0 for r in ours)
    assert records["ceiling"][0]["tokens_per_s"] > 0
    assert [r["memory_size"] for r in records["knn"]] == [1024]
    assert records["knn"][0]["recall_at_k"] == 1.0
    assert {r["kind"] for r in records["generate"]} == {"xl"}
    table = (out / "goals.md").read_text()
    # A second run into the same folder is refused: its records would be averaged in.
    again = run_benchmark_script("gpu_check.sh", settings, timeout=120)
    assert again.returncode == 2
    assert again.stderr.strip().startswith(f"gpu_check: OUTPUT_DIR {out} exists")
    assert "| Transformer-XL >= 75% of the plain Keras ceiling |  | " in table
    assert "not measured (no xl record)" in table
    assert table in done.stdout
