"""Checkpoints of a model, its optimizer and its memory, that survive crashes.

A workdir holds `checkpoints/step-NNNNNNNN/` folders, each with `model.keras`
(weights, optimizer, memory state) and `progress.json` (the step, the
SHA-256 of `model.keras` and the caller's extra data). A checkpoint is written
into a temporary folder, flushed to disk and renamed into place, so a run
killed at any moment leaves only whole checkpoints; the newest `keep` are
kept. `load_checkpoint` verifies the newest one against its hash and falls
back to the one before when it is damaged (a truncated or edited file).
`workdir_lock` keeps a second run from writing the same workdir.
"""

import fcntl
import hashlib
import json
import math
import os
import shutil
import warnings

import keras

from keras_memory.training.finite_check import NonFiniteError, check_finite

CHECKPOINTS_DIR = "checkpoints"
MODEL_NAME = "model.keras"
PROGRESS_NAME = "progress.json"
LOSSES_NAME = "losses.jsonl"
LOCK_NAME = ".lock"
# The layout before checkpoint folders: one model and one progress file.
_LEGACY_MODEL, _LEGACY_PROGRESS = "checkpoint.keras", "progress.json"
_PREFIX, _TEMP_PREFIX = "step-", ".tmp-"
_ADVICE = "lower the learning rate and resume"

_held_locks = {}


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _checkpoint_dirs(workdir):
    """`[(step, path)]` of the workdir's complete checkpoints, newest first."""
    root = os.path.join(workdir, CHECKPOINTS_DIR)
    if not os.path.isdir(root):
        return []
    found = []
    for name in os.listdir(root):
        if name.startswith(_PREFIX) and name[len(_PREFIX) :].isdigit():
            found.append((int(name[len(_PREFIX) :]), os.path.join(root, name)))
    return sorted(found, reverse=True)


def save_checkpoint(model, workdir, step, extra=None, keep=2):
    """Saves `model` (weights, optimizer, memory state) and `step` to `workdir`.

    The checkpoint is complete on disk (files and folder flushed) before it
    is renamed into `checkpoints/step-NNNNNNNN`; then all but the newest
    `keep` checkpoints are removed.

    Args:
        model: a Keras model.
        workdir: str. The run's folder (created if missing).
        step: int. The global step the model has trained.
        extra: dict or None. JSON data stored beside the step.
        keep: int >= 1. Checkpoints to keep; with 2 or more a damaged newest
            one can be replaced by the one before.

    Returns:
        The path of the checkpoint folder.
    """
    if not isinstance(keep, int) or keep < 1:
        raise ValueError(f"`keep` must be an int >= 1; got {keep!r}.")
    root = os.path.join(workdir, CHECKPOINTS_DIR)
    os.makedirs(root, exist_ok=True)
    final = os.path.join(root, f"{_PREFIX}{int(step):08d}")
    temp = os.path.join(root, f"{_TEMP_PREFIX}{_PREFIX}{int(step):08d}-{os.getpid()}")
    shutil.rmtree(temp, ignore_errors=True)
    os.makedirs(temp)
    model_path = os.path.join(temp, MODEL_NAME)
    model.save(model_path)
    progress = {"step": int(step), "sha256": _sha256(model_path), **(extra or {})}
    with open(os.path.join(temp, PROGRESS_NAME), "w") as f:
        json.dump(progress, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    _fsync(model_path)
    _fsync(temp)
    if os.path.exists(final):  # the same step saved again (e.g. at the end of training)
        shutil.rmtree(final)
    os.rename(temp, final)
    _fsync(root)
    for _, old in _checkpoint_dirs(workdir)[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    for name in os.listdir(root):
        if name.startswith(_TEMP_PREFIX) and name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    return final


def remove_partial_checkpoints(workdir):
    """Removes the temporary folders that saves killed midway left in `workdir`.

    `save_checkpoint` writes into `checkpoints/.tmp-step-*` and renames it
    into place when complete; a kill during a save leaves the `.tmp-` folder
    behind. Call this only while holding the workdir's lock (`workdir_lock`):
    with it held no other process can be writing one, so each is debris.

    Args:
        workdir: str. The run's folder.

    Returns:
        The sorted names of the removed folders (empty when there were none).

    Example:
    ```python
    workdir_lock("runs/xl")
    remove_partial_checkpoints("runs/xl")  # ['.tmp-step-00000010-4242']
    ```
    """
    root = os.path.join(workdir, CHECKPOINTS_DIR)
    removed = []
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        path = os.path.join(root, name)
        if name.startswith(_TEMP_PREFIX) and os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
            # Debris that cannot be removed is harmless: report only what went.
            if not os.path.exists(path):
                removed.append(name)
    return removed


def _load_verified(path):
    progress_path = os.path.join(path, PROGRESS_NAME)
    model_path = os.path.join(path, MODEL_NAME)
    with open(progress_path) as f:
        progress = json.load(f)
    if _sha256(model_path) != progress.get("sha256"):
        raise ValueError(f"{MODEL_NAME} does not match the SHA-256 in {PROGRESS_NAME}")
    return keras.saving.load_model(model_path), progress


def load_checkpoint(workdir):
    """Returns `(model, progress)` of the newest sound checkpoint in `workdir`.

    A checkpoint whose files are missing, truncated or altered (its
    `model.keras` no longer matches the recorded SHA-256) is skipped with a
    warning naming it, and the one before is used.

    Args:
        workdir: str. The run's folder.

    Returns:
        `(model, progress)`, or `(None, None)` when `workdir` holds no
        checkpoint.

    Raises:
        ValueError: `workdir` holds checkpoints but every one is damaged.
    """
    checkpoints = _checkpoint_dirs(workdir)
    if not checkpoints:
        legacy_model = os.path.join(workdir, _LEGACY_MODEL)
        legacy_progress = os.path.join(workdir, _LEGACY_PROGRESS)
        if os.path.exists(legacy_model) and os.path.exists(legacy_progress):
            with open(legacy_progress) as f:
                return keras.saving.load_model(legacy_model), json.load(f)
        return None, None
    problems = []
    for _, path in checkpoints:
        try:
            model, progress = _load_verified(path)
        except Exception as error:  # noqa: BLE001 (any damage means: try the one before)
            problems.append(f"{path}: {type(error).__name__}: {error}")
            warnings.warn(
                f"Checkpoint {path} is damaged ({type(error).__name__}: {error}); "
                "trying the one before.",
                stacklevel=2,
            )
            continue
        return model, progress
    raise ValueError(
        f"--workdir {workdir}: every checkpoint is damaged:\n  " + "\n  ".join(problems)
    )


def checkpoint_path(workdir):
    """The `model.keras` of the newest checkpoint in `workdir` (not verified), or None."""
    checkpoints = _checkpoint_dirs(workdir)
    if checkpoints:
        return os.path.join(checkpoints[0][1], MODEL_NAME)
    legacy = os.path.join(workdir, _LEGACY_MODEL)
    return legacy if os.path.exists(legacy) else None


def workdir_lock(workdir):
    """Takes the workdir's lock for this process, or says who holds it.

    The lock is an exclusive `flock` on `WORKDIR/.lock`: the operating system
    releases it when the process ends, however it ends, so a killed run never
    leaves a stale lock. Taking it again in the same process is a no-op.

    Args:
        workdir: str. The run's folder (created if missing).

    Raises:
        ValueError: another process holds the lock (its pid is named).
    """
    os.makedirs(workdir, exist_ok=True)
    path = os.path.realpath(os.path.join(workdir, LOCK_NAME))
    if path in _held_locks:
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise ValueError(
            f"--workdir {workdir} is in use by another run (pid {holder}); wait for it or "
            "choose another --workdir."
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    _held_locks[path] = fd


def release_workdir_lock(workdir):
    """Releases this process's lock of `workdir`, if it holds it."""
    path = os.path.realpath(os.path.join(workdir, LOCK_NAME))
    fd = _held_locks.pop(path, None)
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def read_losses(workdir):
    """The losses `CheckpointEvery` recorded in `WORKDIR/losses.jsonl`.

    A run killed while appending leaves a partial last line: it is dropped
    with a warning (the next `CheckpointEvery` rewrites the file without it).

    Args:
        workdir: str. The run's folder.

    Returns:
        `[{"step": int, "loss": float}]` in file order (empty: no file).

    Raises:
        ValueError: a line before the last is not such a record (the message
            names the file and the line number).
    """
    path = os.path.join(workdir, LOSSES_NAME)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = [(number, line) for number, line in enumerate(f, 1) if line.strip()]
    records = []
    for index, (number, line) in enumerate(lines):
        record, problem = _parse_loss(line)
        if problem is None:
            records.append(record)
        elif index == len(lines) - 1:
            warnings.warn(
                f"{path} line {number} is incomplete (a run killed while writing it?) "
                f"and is ignored: {problem}",
                stacklevel=2,
            )
        else:
            raise ValueError(
                f'{path} line {number} is not a JSON record {{"step": int, "loss": float}}: '
                f"{problem}"
            )
    return records


def _parse_loss(line):
    """`(record, None)` for a sound `losses.jsonl` line, else `(None, what is wrong)`."""
    try:
        record = json.loads(line)
    except ValueError as error:
        return None, f"{error} in {line.rstrip()[:80]!r}"
    fields = (record.get("step"), record.get("loss")) if isinstance(record, dict) else ()
    # `type(...) is`, not isinstance: bool is an int, and `true` is no step or loss.
    if len(fields) < 2 or type(fields[0]) is not int or type(fields[1]) not in (int, float):
        return None, f"{line.rstrip()[:80]!r} lacks an int step or a number loss"
    return record, None


def truncate_losses(workdir, step):
    """Drops recorded losses after `step`: steps a resumed run will train again."""
    kept = [record for record in read_losses(workdir) if record["step"] <= step]
    path = os.path.join(workdir, LOSSES_NAME)
    if os.path.exists(path):
        temp = f"{path}.tmp"
        with open(temp, "w") as f:
            for record in kept:
                f.write(json.dumps(record) + "\n")
        os.replace(temp, path)


class CheckpointEvery(keras.callbacks.Callback):
    """Saves a checkpoint every `every` steps and at the end of training.

    When training begins it takes the workdir's lock (see `workdir_lock`)
    and removes temporary folders of killed saves. It appends each step's
    loss to `WORKDIR/losses.jsonl` as it saves, so the losses on disk always
    reach the newest checkpoint. A NaN never reaches the disk: a non-finite
    loss, or non-finite weights or memory at a save (the loss of step t is
    computed before step t's update, so the weights can break first), stop
    training with `NonFiniteError` and leave the checkpoints as they were.

    Args:
        workdir: str. Where the checkpoints go.
        every: int. Steps between checkpoints (0: only at the end).
        first_step: int. Global step of the first batch of this `fit`.
        extra: dict. Written into `progress.json` beside the step.
        keep: int. Checkpoints kept (see `save_checkpoint`).

    Attributes:
        saved_step: int or None. The newest checkpoint's step, for messages:
            the last this run saved, else `first_step` (None for 0).

    Raises:
        NonFiniteError: from `fit`, when training diverges (see above).
    """

    def __init__(self, workdir, every, first_step=0, extra=None, keep=2):
        super().__init__()
        self.workdir = workdir
        self.every = every
        self.first_step = self.step = first_step
        self.extra = extra or {}
        self.keep = keep
        self.losses = []
        self._previous_mean = 0.0
        self._saved_step = None  # saved by this callback
        self.saved_step = first_step or None
        self._written = 0

    def on_train_begin(self, logs=None):
        workdir_lock(self.workdir)
        remove_partial_checkpoints(self.workdir)
        # Losses past the step this run starts from belong to a run that died.
        truncate_losses(self.workdir, self.step)

    def on_epoch_begin(self, epoch, logs=None):
        self._previous_mean = 0.0

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        # Keras logs the running mean over the epoch (equal batch weights);
        # undo it to record this batch's own loss.
        mean = float(logs["loss"])
        loss = mean * (batch + 1) - self._previous_mean * batch
        if not (math.isfinite(mean) and math.isfinite(loss)):
            self.model.stop_training = True
            raise NonFiniteError(self._diverged(f"the loss is {loss}"))
        self.losses.append(loss)
        self._previous_mean = mean
        if self.every and self.step % self.every == 0:
            self._save()

    def on_train_end(self, logs=None):
        if self._saved_step != self.step:
            self._save()

    def _diverged(self, what):
        kept = f"the newest checkpoint (step {self.saved_step}) in {self.workdir} is kept"
        if self.saved_step is None:
            kept = f"no checkpoint was saved in {self.workdir}"
        return f"training diverged at step {self.step}: {what}; {kept}; {_ADVICE}"

    def _save(self):
        try:
            check_finite(self.model)
        except NonFiniteError as error:
            self.model.stop_training = True
            detail = str(error).rstrip(".")
            raise NonFiniteError(self._diverged(detail[0].lower() + detail[1:])) from None
        first = self.step - len(self.losses) + 1
        with open(os.path.join(self.workdir, LOSSES_NAME), "a") as f:
            for i in range(self._written, len(self.losses)):
                f.write(json.dumps({"step": first + i, "loss": self.losses[i]}) + "\n")
        self._written = len(self.losses)
        save_checkpoint(self.model, self.workdir, self.step, self.extra, keep=self.keep)
        self._saved_step = self.saved_step = self.step
