"""The tf.distribute recipe on logical CPU devices: same losses, exact resume.

TensorFlow only (the suite runs once per backend). Each run is a fresh process:
logical devices must be configured before TensorFlow starts.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_memory.training import load_memory_state

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="tf.distribute runs on TensorFlow only"
)
BATCH = 4


def run(workdir, devices, steps, batch_size=BATCH, memory_placement="device"):
    args = [
        "--memory-placement",
        memory_placement,
        "--cpu-devices",
        str(devices),
        "--kind",
        "memorizing",
        "--memory-size",
        "256",
        "--segment-length",
        "32",
        "--batch-size",
        str(batch_size),
        "--max-documents",
        "30",
        "--checkpoint-every",
        "2",
        "--steps",
        str(steps),
        "--workdir",
        str(workdir),
    ]
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "recipes", "distributed_tf.py"), *args],
        env={**os.environ, "PYTHONPATH": ROOT, "KERAS_BACKEND": "tensorflow"},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )


def losses_and_report(process):
    assert process.returncode == 0, process.stderr[-3000:]
    lines = [json.loads(line) for line in process.stdout.strip().splitlines()]
    return [line["loss"] for line in lines[:-1]], lines[-1]


@pytest.fixture(scope="module")
def single_device(tmp_path_factory):
    return losses_and_report(run(tmp_path_factory.mktemp("single"), 1, 4))


def test_four_replicas_train_like_one_device_with_memory_split_by_rows(tmp_path, single_device):
    losses, report = losses_and_report(run(tmp_path, 4, 3))
    # Step 3 reads a kNN memory and XL cache filled by steps 1-2.
    np.testing.assert_allclose(losses, single_device[0][:3], rtol=1e-5)
    assert report["strategy"] == "MirroredStrategy" and report["replicas"] == 4
    memory_block = report["replica_state_shapes"][1]
    assert memory_block["memory_keys"][0] == BATCH // 4  # each replica: its own row only
    assert memory_block["memory_pointer"] == []


def test_resumes_on_another_replica_count_as_if_never_stopped(tmp_path, single_device):
    losses_and_report(run(tmp_path, 4, 2))
    saved = load_memory_state(os.path.join(tmp_path, "memory", "step-2.npz"))
    assert saved[1]["memory_keys"].shape[0] == BATCH  # every replica's rows, gathered
    assert saved[1]["memory_valid"].any()
    resumed, report = losses_and_report(run(tmp_path, 2, 4))
    assert report["resumed_from"] == 2 and report["replicas"] == 2
    np.testing.assert_allclose(resumed, single_device[0][2:], rtol=1e-5)
    assert sorted(os.listdir(os.path.join(tmp_path, "memory"))) == ["step-2.npz", "step-4.npz"]


def test_a_host_memory_trains_and_resumes_on_another_replica_count(tmp_path, single_device):
    # Each replica's rows keep their own host memory (one per global row), saved with the
    # checkpoint's model. Below 2,048 entries a host row is searched by brute force: the same
    # entries as the device ring's exact search, so the same losses.
    first, report = losses_and_report(run(tmp_path, 4, 2, memory_placement="host"))
    assert report["replicas"] == 4
    assert "memory_keys" not in report["replica_state_shapes"][1]  # no ring on the device
    np.testing.assert_allclose(first, single_device[0][:2], rtol=1e-5)
    resumed, report = losses_and_report(run(tmp_path, 2, 4, memory_placement="host"))
    assert report["resumed_from"] == 2 and report["replicas"] == 2
    np.testing.assert_allclose(resumed, single_device[0][2:], rtol=1e-5)


def test_a_batch_the_replicas_cannot_share_is_a_clear_error(tmp_path):
    process = run(tmp_path, 2, 1, batch_size=3)
    assert process.returncode != 0
    assert "--batch-size 3 must be a multiple of the number of replicas (2)" in process.stderr
