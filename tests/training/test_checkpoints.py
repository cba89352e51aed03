"""Checkpoints survive kills, truncation and a second run on the same workdir."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import warnings

import keras
import numpy as np
import pytest

from keras_memory.cli import main
from keras_memory.data import SegmentStream
from keras_memory.models import MemoryLM
from keras_memory.training import (
    CheckpointEvery,
    NonFiniteError,
    load_checkpoint,
    read_losses,
    remove_partial_checkpoints,
    save_checkpoint,
)
from keras_memory.training.checkpoints import (
    CHECKPOINTS_DIR,
    MODEL_NAME,
    _checkpoint_dirs,
    truncate_losses,
)
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


def segment_stream():
    rng = np.random.default_rng(0)
    documents = [rng.integers(3, 250, size=128 * 8) for _ in range(2)]
    return SegmentStream(documents, batch_size=2, segment_length=128)


def files_under(folder):
    """`{relative path: bytes}` of every file under `folder`."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, folder)] = f.read()
    return found


def write_lines(path, lines):
    with open(path, "w") as f:
        f.write("".join(lines))


def test_a_partial_last_loss_line_is_dropped_with_a_warning(tmp_path):
    path = tmp_path / "losses.jsonl"
    good = [json.dumps({"step": step, "loss": 2.5}) + "\n" for step in (1, 2, 3)]
    write_lines(path, [*good, '{"step": 4, "lo'])  # killed while appending
    with pytest.warns(UserWarning, match=f"{path} line 4 is incomplete"):
        assert read_losses(str(tmp_path)) == [{"step": s, "loss": 2.5} for s in (1, 2, 3)]
    with pytest.warns(UserWarning):
        truncate_losses(str(tmp_path), 10)  # what a resumed CheckpointEvery does
    assert path.read_text() == "".join(good)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(read_losses(str(tmp_path))) == 3


@pytest.mark.parametrize(
    "bad",
    ['{"step": 2, "lo\n', "[2, 1.5]\n", '{"step": true, "loss": 1.0}\n', '{"step": 2}\n'],
)
def test_a_bad_loss_line_before_the_last_names_the_file_and_line(tmp_path, bad):
    path = tmp_path / "losses.jsonl"
    write_lines(path, ['{"step": 1, "loss": 2.0}\n', "\n", bad, '{"step": 3, "loss": 2.0}\n'])
    expected = f'{path} line 3 is not a JSON record {{"step": int, "loss": float}}: '
    with pytest.raises(ValueError, match=re.escape(expected)):
        read_losses(str(tmp_path))


def test_temporary_folders_of_killed_saves_are_removed_when_training_begins(tmp_path):
    workdir = str(tmp_path)
    assert remove_partial_checkpoints(workdir) == []  # no checkpoints folder yet
    stale = os.path.join(workdir, CHECKPOINTS_DIR, ".tmp-step-00000010-123")
    os.makedirs(stale)
    with open(os.path.join(stale, MODEL_NAME), "wb") as f:
        f.write(b"PK\x03\x04 torn")
    model = small_model()
    callback = CheckpointEvery(workdir, every=2)
    model.fit(segment_stream(), epochs=1, steps_per_epoch=4, verbose=0, callbacks=[callback])
    assert sorted(os.listdir(os.path.join(workdir, CHECKPOINTS_DIR))) == [
        "step-00000002",
        "step-00000004",
    ]
    assert load_checkpoint(workdir)[1]["step"] == callback.saved_step == 4
    # Only `.tmp-` folders go; the names come back sorted.
    for name in (".tmp-step-00000008-7", ".tmp-step-00000006-9"):
        os.makedirs(os.path.join(workdir, CHECKPOINTS_DIR, name))
    assert remove_partial_checkpoints(workdir) == [".tmp-step-00000006-9", ".tmp-step-00000008-7"]
    assert [step for step, _ in _checkpoint_dirs(workdir)] == [4, 2]


class _PoisonAfter(keras.callbacks.Callback):
    """Photographs the workdir, then writes NaN into every weight, after step `at`."""

    def __init__(self, at, workdir):
        super().__init__()
        self.at, self.workdir, self.files = at, workdir, None

    def on_train_batch_end(self, batch, logs=None):
        if batch + 1 == self.at:
            self.files = files_under(self.workdir)
            for variable in self.model.trainable_variables:
                variable.assign(np.full(variable.shape, np.nan, variable.dtype))


def diverged(step, kept, workdir):
    return (
        re.escape(f"training diverged at step {step}: ")
        + ".*"
        + re.escape(
            f"; the newest checkpoint (step {kept}) in {workdir} is kept; "
            "lower the learning rate and resume"
        )
    )


def test_a_nan_loss_stops_training_and_leaves_the_checkpoints_as_they_were(tmp_path):
    workdir = str(tmp_path)
    model = small_model()
    poison = _PoisonAfter(3, workdir)  # after the checkpoint of step 2
    callback = CheckpointEvery(workdir, every=2)
    with pytest.raises(NonFiniteError, match=diverged(4, 2, workdir)) as info:
        model.fit(
            segment_stream(), epochs=1, steps_per_epoch=6, verbose=0, callbacks=[callback, poison]
        )
    assert "at step 4: the loss is nan;" in str(info.value)
    assert callback.saved_step == 2 and model.stop_training
    assert files_under(workdir) == poison.files
    assert [r["step"] for r in read_losses(workdir)] == [1, 2]


def test_nan_weights_under_a_finite_loss_are_not_saved(tmp_path):
    workdir = str(tmp_path)
    model = small_model()
    # Poisoned after step 4's update, before its save: step 4's loss was finite.
    poison = _PoisonAfter(4, workdir)
    with pytest.raises(NonFiniteError, match=diverged(4, 2, workdir)) as info:
        model.fit(
            segment_stream(),
            epochs=1,
            steps_per_epoch=6,
            verbose=0,
            callbacks=[poison, CheckpointEvery(workdir, every=2)],
        )
    assert "at step 4: non-finite values (NaN or Inf) in " in str(info.value)
    assert files_under(workdir) == poison.files
    assert [r["step"] for r in read_losses(workdir)] == [1, 2]


def test_a_huge_learning_rate_never_writes_nan(tmp_path):
    # AdamW at 1e9 turns the weights NaN in the update of step 2; step 3's loss is NaN.
    def diverging_model():
        model = small_model()
        model.compile(optimizer=keras.optimizers.AdamW(1e9))
        return model

    # Saving every step: the save of step 2 finds the weights NaN.
    workdir = str(tmp_path / "every_step")
    callback = CheckpointEvery(workdir, every=1)
    with pytest.raises(NonFiniteError, match=diverged(2, 1, workdir)):
        diverging_model().fit(
            segment_stream(), epochs=1, steps_per_epoch=6, verbose=0, callbacks=[callback]
        )
    assert [step for step, _ in _checkpoint_dirs(workdir)] == [1]
    loaded, _ = load_checkpoint(workdir)
    assert all(np.isfinite(w).all() for w in weights_of(loaded))
    assert [r["step"] for r in read_losses(workdir)] == [1]

    # No save before the NaN loss: the message says nothing was saved.
    workdir = str(tmp_path / "rarely")
    expected = re.escape(
        "training diverged at step 3: the loss is nan; no checkpoint was saved in "
        f"{workdir}; lower the learning rate and resume"
    )
    with pytest.raises(NonFiniteError, match=expected):
        diverging_model().fit(
            segment_stream(),
            epochs=1,
            steps_per_epoch=6,
            verbose=0,
            callbacks=[CheckpointEvery(workdir, every=5)],
        )
    assert _checkpoint_dirs(workdir) == [] and read_losses(workdir) == []
