"""Atomic checkpoints of a model, its optimizer and its memory, with the step."""

import json
import os

import keras

CHECKPOINT_NAME = "checkpoint.keras"
PROGRESS_NAME = "progress.json"


def save_checkpoint(model, workdir, step, extra=None):
    """Saves `model` (weights, optimizer, memory state) and `step` to `workdir`.

    Both files are written to temporary names and renamed into place, so a
    run killed mid-write leaves the previous checkpoint intact.
    """
    os.makedirs(workdir, exist_ok=True)
    model_path = os.path.join(workdir, CHECKPOINT_NAME)
    temp_model = os.path.join(workdir, f".tmp-{CHECKPOINT_NAME}")
    model.save(temp_model)
    progress = {"step": int(step), **(extra or {})}
    temp_progress = os.path.join(workdir, f".tmp-{PROGRESS_NAME}")
    with open(temp_progress, "w") as f:
        json.dump(progress, f, indent=2)
    os.replace(temp_model, model_path)
    os.replace(temp_progress, os.path.join(workdir, PROGRESS_NAME))


def load_checkpoint(workdir):
    """Returns `(model, progress)` from `workdir`, or `(None, None)` if it has none."""
    model_path = os.path.join(workdir, CHECKPOINT_NAME)
    progress_path = os.path.join(workdir, PROGRESS_NAME)
    if not (os.path.exists(model_path) and os.path.exists(progress_path)):
        return None, None
    with open(progress_path) as f:
        progress = json.load(f)
    return keras.saving.load_model(model_path), progress


class CheckpointEvery(keras.callbacks.Callback):
    """Saves a checkpoint every `every` steps and at the end of training.

    Args:
        workdir: str. Where the checkpoint goes.
        every: int. Steps between checkpoints.
        first_step: int. Global step of the first batch of this `fit`.
        extra: dict. Written into `progress.json` beside the step.
    """

    def __init__(self, workdir, every, first_step=0, extra=None):
        super().__init__()
        self.workdir = workdir
        self.every = every
        self.step = first_step
        self.extra = extra or {}
        self.losses = []
        self._previous_mean = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._previous_mean = 0.0

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        # Keras logs the running mean over the epoch (equal batch weights);
        # undo it to record this batch's own loss.
        mean = float(logs["loss"])
        self.losses.append(mean * (batch + 1) - self._previous_mean * batch)
        self._previous_mean = mean
        if self.every and self.step % self.every == 0:
            self._save()

    def on_train_end(self, logs=None):
        self._save()

    def _save(self):
        save_checkpoint(self.model, self.workdir, self.step, self.extra)
