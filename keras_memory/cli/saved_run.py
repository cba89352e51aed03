"""The trained run a `--workdir` holds, for `evaluate` and `generate`."""


def load_run(args):
    """`(model, progress)` of the newest checkpoint in `--workdir`, or SystemExit."""
    from keras_memory.training import load_checkpoint

    model, progress = load_checkpoint(args.workdir)
    if model is None:
        raise SystemExit(f"No checkpoint in --workdir {args.workdir}; run `train` first.")
    return model, progress
