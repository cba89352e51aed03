"""The run a `--workdir` holds: the folder checked, the newest checkpoint and its config."""

import os


def check_workdir(workdir, create):
    """Raises ValueError naming `--workdir` unless it is (or, with `create`, can be) a folder.

    Checked before anything is read or written, so a file, a path under a
    file or a read-only folder gives one line rather than an `OSError`.
    """
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise ValueError(f"--workdir {workdir} is a file; expected a folder.")
    if not os.path.exists(workdir):
        if not create:
            raise ValueError(f"--workdir {workdir} does not exist; run `train` first.")
        try:
            os.makedirs(workdir)
        except OSError as error:
            raise ValueError(
                f"--workdir {workdir} cannot be created: {error.strerror.lower()}."
            ) from None
    if create and not os.access(workdir, os.W_OK | os.X_OK):
        raise ValueError(f"--workdir {workdir} is not writable.")


def run_config_of(workdir, progress):
    """The `run_config` a checkpoint's progress records, or ValueError naming the file."""
    from keras_memory.training import checkpoint_path

    config = progress.get("run_config")
    if not isinstance(config, dict) or not {"kind", "segment_length", "batch_size"} <= set(config):
        where = os.path.join(os.path.dirname(checkpoint_path(workdir) or workdir), "progress.json")
        raise ValueError(
            f"{where} has no run configuration (damaged or written by hand); restore it or "
            "train in a new --workdir."
        )
    return config


def newest_progress(workdir):
    """The newest checkpoint's `progress.json` (not verified), or None when there is none.

    Reading it costs nothing beside loading the model, so every check of a
    command line against the saved run is done before the model is loaded.
    """
    import json

    from keras_memory.training import checkpoint_path

    model_path = checkpoint_path(workdir)
    if model_path is None:
        return None
    path = os.path.join(os.path.dirname(model_path), "progress.json")
    try:
        with open(path) as f:
            progress = json.load(f)
    except (OSError, ValueError):
        # Damaged: `load_checkpoint` falls back to the checkpoint before it.
        return {}
    return progress if isinstance(progress, dict) else {}


def saved_run_config(args):
    """The run config of `--workdir`'s newest checkpoint, read without loading the model."""
    check_workdir(args.workdir, create=False)
    progress = newest_progress(args.workdir)
    if progress is None:
        raise ValueError(f"--workdir {args.workdir} holds no checkpoint; run `train` first.")
    return run_config_of(args.workdir, progress) if progress else None


def load_run(args):
    """`(model, progress)` of the newest sound checkpoint in `--workdir`, or ValueError."""
    from keras_memory.training import load_checkpoint

    check_workdir(args.workdir, create=False)
    model, progress = load_checkpoint(args.workdir)
    if model is None:
        raise ValueError(f"--workdir {args.workdir} holds no checkpoint; run `train` first.")
    run_config_of(args.workdir, progress)
    return model, progress
