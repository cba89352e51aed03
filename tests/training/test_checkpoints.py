"""Checkpoints survive kills, truncation and a second run on the same workdir."""

import json
import os
import shutil
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from keras_memory.cli import main
from keras_memory.models import MemoryLM
from keras_memory.training import load_checkpoint, save_checkpoint
from keras_memory.training.checkpoints import CHECKPOINTS_DIR, MODEL_NAME, _checkpoint_dirs
from tests.conftest import to_numpy
from tests.test_cli import corpus, train_args  # noqa: F401 (fixture)


def small_model():
    model = MemoryLM.from_preset("tiny", kind="xl", stateful=True, hidden_dim=16, num_layers=1)
    model.compile(optimizer="adamw")
    model({"tokens": np.ones((2, 128), "int32"), "reset": np.array([True, True])})
    model.optimizer.build(model.trainable_variables)
    return model


def weights_of(model):
    return [to_numpy(w) for w in model.weights]


def test_newest_checkpoints_are_kept_and_a_damaged_one_falls_back(tmp_path):
    workdir = str(tmp_path)
    model = small_model()
    saved = {}
    for step in (1, 2, 3):
        model.weights[0].assign(np.full(model.weights[0].shape, float(step), "float32"))
        save_checkpoint(model, workdir, step, {"note": step}, keep=2)
        saved[step] = weights_of(model)
    assert [step for step, _ in _checkpoint_dirs(workdir)] == [3, 2]
    loaded, progress = load_checkpoint(workdir)
    assert progress["step"] == 3 and progress["note"] == 3
    for a, b in zip(weights_of(loaded), saved[3], strict=True):
        np.testing.assert_array_equal(a, b)

    # Truncate the newest model file, as a full disk or a torn copy would.
    newest = os.path.join(_checkpoint_dirs(workdir)[0][1], MODEL_NAME)
    with open(newest, "r+b") as f:
        f.truncate(os.path.getsize(newest) // 2)
    with pytest.warns(UserWarning, match="step-00000003 is damaged"):
        loaded, progress = load_checkpoint(workdir)
    assert progress["step"] == 2
    for a, b in zip(weights_of(loaded), saved[2], strict=True):
        np.testing.assert_array_equal(a, b)

    # Same size, one byte changed: only the hash can tell.
    older = os.path.join(_checkpoint_dirs(workdir)[1][1], MODEL_NAME)
    with open(older, "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="every checkpoint is damaged"):
        load_checkpoint(workdir)


def test_a_checkpoint_left_half_written_by_a_kill_is_ignored(tmp_path):
    workdir = str(tmp_path)
    model = small_model()
    save_checkpoint(model, workdir, 4)
    # What a kill during the next save leaves: a temporary folder, half a file.
    partial = os.path.join(workdir, CHECKPOINTS_DIR, ".tmp-step-00000006-99999")
    os.makedirs(partial)
    with open(os.path.join(partial, MODEL_NAME), "wb") as f:
        f.write(b"PK\x03\x04 torn")
    loaded, progress = load_checkpoint(workdir)
    assert progress["step"] == 4
    for a, b in zip(weights_of(loaded), weights_of(model), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_second_run_on_a_locked_workdir_is_refused(corpus, tmp_path, capsys):  # noqa: F811
    workdir = tmp_path / "run"
    workdir.mkdir()
    # Another process holds the lock the way a training run does.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(workdir / '.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.write(fd, str(os.getpid()).encode())\n"
            "print('locked', flush=True)\n"
            "time.sleep(120)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(SystemExit) as exit_info:
            main(train_args(corpus, str(workdir), 1))
        assert exit_info.value.code == 2
        assert f"in use by another run (pid {holder.pid})" in capsys.readouterr().err
        assert not os.path.exists(workdir / CHECKPOINTS_DIR)  # nothing was written
    finally:
        holder.kill()  # the OS drops a dead process's lock: no stale lock
        holder.wait()
    main(train_args(corpus, str(workdir), 1))
    assert load_checkpoint(str(workdir))[1]["step"] == 1


def test_a_training_process_killed_with_sigkill_resumes_exactly(corpus, tmp_path):  # noqa: F811
    straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.dirname(__file__)))}
    run = subprocess.Popen(
        [sys.executable, "-m", "keras_memory.cli"]
        + train_args(corpus, killed, 10_000, "--checkpoint-every", "2"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 300
        while not _checkpoint_dirs(killed) and time.time() < deadline and run.poll() is None:
            time.sleep(0.05)
        time.sleep(0.3)  # somewhere in the steps after the first checkpoint
    finally:
        run.kill()
        run.wait()
    assert _checkpoint_dirs(killed), "the run made no checkpoint before it was killed"
    steps = _checkpoint_dirs(killed)[0][0] + 3  # past the newest checkpoint
    main(train_args(corpus, killed, steps, "--checkpoint-every", "2", "--resume"))
    main(train_args(corpus, straight, steps, "--checkpoint-every", "2"))
    assert_same_run(straight, killed, steps)


def assert_same_run(straight, resumed, steps):
    with open(os.path.join(straight, "losses.jsonl")) as f:
        a = [json.loads(line) for line in f]
    with open(os.path.join(resumed, "losses.jsonl")) as f:
        b = [json.loads(line) for line in f]
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, steps + 1))
    # Keras logs a running mean; per-step losses recovered from it carry float32
    # rounding that depends on the step's place in its `fit`, so not bit-equal.
    np.testing.assert_allclose([r["loss"] for r in a], [r["loss"] for r in b], rtol=1e-5)
    model_a, progress_a = load_checkpoint(straight)
    model_b, progress_b = load_checkpoint(resumed)
    assert progress_a["step"] == progress_b["step"] == steps
    # Weights include every memory-state variable (non-trainable weights).
    for wa, wb in zip(model_a.weights, model_b.weights, strict=True):
        assert_same(to_numpy(wa), to_numpy(wb), err_msg=wa.path)
    for va, vb in zip(model_a.optimizer.variables, model_b.optimizer.variables, strict=True):
        assert_same(to_numpy(va), to_numpy(vb), err_msg=va.path)


def assert_same(a, b, err_msg):
    if keras.backend.backend() == "tensorflow":
        # TensorFlow's gradient sums are not repeatable from one trace to the next:
        # two fresh processes training Melodi alike differed in the last bit of
        # some weights (2 runs in 6, op determinism on or off). A wrong resume
        # (a stale state, a skipped or repeated step) is far outside this.
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7, err_msg=err_msg)
    else:
        np.testing.assert_array_equal(a, b, err_msg=err_msg)


KIND_OPTIONS = {
    "xl": [],
    "local": [],
    "memorizing": ["--memory-size", "64"],
    "memorizing_dense": ["--memory-size", "64"],
    "block_recurrent": ["--gate", "lstm"],
    "melodi": [],
}


@pytest.mark.parametrize("kind", sorted(KIND_OPTIONS))
def test_every_kind_killed_at_a_random_step_resumes_exactly(
    corpus,  # noqa: F811
    tmp_path,
    monkeypatch,
    kind,
):
    from keras_memory.training import CheckpointEvery

    steps = 5
    kill_step = int(np.random.default_rng(sorted(KIND_OPTIONS).index(kind)).integers(2, steps))
    straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
    batch_end = CheckpointEvery.on_train_batch_end

    def snapshot_at_kill_step(self, batch, logs=None):
        batch_end(self, batch, logs)
        if self.step == kill_step:
            # What the disk holds if the process dies now: copy it aside.
            shutil.copytree(straight, killed)

    monkeypatch.setattr(CheckpointEvery, "on_train_batch_end", snapshot_at_kill_step)
    options = ["--model", kind, "--checkpoint-every", "2", *KIND_OPTIONS[kind]]
    main(train_args(corpus, straight, steps, *options))
    monkeypatch.setattr(CheckpointEvery, "on_train_batch_end", batch_end)
    os.remove(os.path.join(killed, ".lock"))  # a copy, not a held lock
    main(train_args(corpus, killed, steps, *options, "--resume"))
    assert_same_run(straight, killed, steps)
