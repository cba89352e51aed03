"""The run configuration `train` records in its checkpoints, and `--resume` takes back.

A flag's value lands in it the same way in every release: `--resume`
compares what was typed with what was saved. The kind's own options are
asked of the kind registry (`get_kind(kind).option_names()`), never of the
kind's name.
"""

import dataclasses
import os

from keras_memory.cli.corpora import NAMED_DATA, NAMED_PASSAGES, SYNTHETIC_TASKS

# Recorded with `memory_size` even by a kind that does not read them (the
# dense-KV memory): runs have always recorded them, and `--resume` compares.
RECORDED_WITH = {"memory_size": ("num_neighbors", "retrieval")}

# Run-config keys whose flag stores the opposite (`--no-position-bias`) or
# another name; every other key is its flag's `dest`.
INVERTED_FLAGS = {"use_position_bias": "no_position_bias", "use_cache": "no_xl_cache"}


def flag_name(key):
    """The flag a run-config key comes from: `segment_length` -> `--segment-length`."""
    return "--" + INVERTED_FLAGS.get(key, key).replace("_", "-")


def preset_of(args):
    """The `--preset`'s dict, or ValueError naming the presets."""
    from keras_memory.models.presets import PRESETS

    if args.preset not in PRESETS:
        raise ValueError(f"--preset {args.preset!r} is unknown; choose from {sorted(PRESETS)}.")
    return PRESETS[args.preset]


def resolved_data(data):
    """`--data` as recorded: a named corpus as typed, a path made absolute.

    An absolute path lets `evaluate` and `--resume` find the data from any
    working directory.
    """
    if data in NAMED_DATA:
        return data
    return os.path.abspath(os.path.expanduser(data))


def base_run_config(args, segment, window):
    """What every run records: kind, preset, sizes, batch, seed, data, precision, tokenizer.

    The data's own options are recorded only where they apply (and differ from
    nothing older runs recorded), so older checkpoints still compare equal.
    """
    config = {
        "kind": args.kind,
        "preset": args.preset,
        "segment_length": segment,
        "window_length": window,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "data": resolved_data(args.data),
        "max_documents": args.max_documents,
        "precision": args.precision,
        "tokenizer": args.tokenizer,
    }
    if args.data == "pg19" and args.tfds_data_dir:
        config["tfds_data_dir"] = resolved_data(args.tfds_data_dir)
    if args.data in SYNTHETIC_TASKS:
        config["distances"] = args.distances
        config["num_documents"] = args.num_documents
    if args.data == "prose-facts":
        passages = args.fact_passages
        config["fact_passages"] = (
            passages if passages in NAMED_PASSAGES else resolved_data(passages)
        )
    return config


def take_saved_config(args, saved):
    """Sets the flags not typed on a `--resume` command line to the saved run's values."""
    for key, value in saved.items():
        dest = INVERTED_FLAGS.get(key, key)
        if hasattr(args, dest) and dest not in args.given:
            setattr(args, dest, (not value) if dest in INVERTED_FLAGS.values() else value)


def differences(saved, asked):
    """`--flag asked (saved: value)` for each run-config entry that differs; [] if none.

    A path saved as typed by an older release compares by its absolute form;
    where the data lie (`tfds_data_dir`) may be given to a run that did not
    record it; a kind option added after the run was saved is taken to have
    been at its default.
    """
    from keras_memory.cli.kind_flags import kind_flags

    defaults = {
        name: flag.field.default
        for name, flag in kind_flags().items()
        if flag.field.default is not dataclasses.MISSING
    }
    saved = dict(saved)
    for key, default in defaults.items():
        if key not in saved and key in asked:
            saved[key] = default
    if saved.get("data") is not None:
        saved["data"] = resolved_data(saved["data"])
    found = []
    for key in sorted(set(saved) | set(asked)):
        if key == "tfds_data_dir" and key not in saved:
            continue
        if saved.get(key) != asked.get(key):
            found.append(f"{flag_name(key)} {asked.get(key)} (saved: {saved.get(key)})")
    return found


def kind_options(args, preset, segment):
    """The `--kind`'s own options from its flags; an unset one is the preset's, if it has it.

    Raises:
        ValueError: a typed flag is another kind's option, or the memory size
            does not fit the segment or `--num-neighbors`.
    """
    from keras_memory.cli.kind_flags import kind_flags
    from keras_memory.memories import get_kind

    flags = kind_flags()
    names = [name for name in get_kind(args.kind).option_names() if name in flags]
    for name in list(names):
        names += [extra for extra in RECORDED_WITH.get(name, ()) if extra not in names]
    _refuse_other_kinds_flags(args, flags, names)
    options = {}
    for name in names:
        value = getattr(args, name, None)
        value = preset.get(name) if value is None else value
        if value is not None:
            options[name] = value
    _check_memory_size(options, segment)
    return options


def _refuse_other_kinds_flags(args, flags, names):
    foreign = [flags[name] for name in sorted(args.given & set(flags)) if name not in names]
    if foreign:
        described = "; ".join(
            f"{flag.flag} is an option of {', '.join(flag.kinds)} only" for flag in foreign
        )
        raise ValueError(f"--kind {args.kind} has no such option: {described}.")


def _check_memory_size(options, segment):
    if "memory_size" not in options:
        return
    size, neighbors = options["memory_size"], options.get("num_neighbors", 0)
    if size % segment or neighbors > size:
        raise ValueError(
            f"--memory-size {size} must be a multiple of the segment length "
            f"{segment} and >= --num-neighbors {neighbors}."
        )


def lswt_options(args):
    """The LSWT (and cache) options given on the command line; the unset ones left out."""
    return {
        key: value
        for key, value in (
            ("rotary", args.rotary),
            ("rotary_base", args.rotary_base),
            ("num_registers", args.num_registers),
            ("num_key_value_heads", args.num_key_value_heads),
            ("use_position_bias", False if args.no_position_bias else None),
            ("activation", args.activation),
            ("contrastive_margin", args.contrastive_margin),
            ("embedding_dim", args.embedding_dim),
            ("freeze_embedding", True if args.freeze_embedding else None),
            ("use_cache", False if args.no_xl_cache else None),
        )
        if value is not None
    }


def add_model_options(run_config, args, kind_options, lswt_options):
    """Records the kind's options, `--warm-start`, the LSWT options and a non-default optimizer."""
    run_config.update(kind_options)
    if args.warm_start:
        run_config["warm_start"] = args.warm_start
    run_config.update(lswt_options)
    if args.optimizer != "adamw":
        run_config["optimizer"] = args.optimizer
    return run_config
