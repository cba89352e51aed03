"""The run configuration `train` records in its checkpoints, from the parsed flags.

`--resume` compares it with the saved one, so a flag's value lands in it the
same way in every release: the kind's own options are asked of the kind
registry (`get_kind(kind).option_names()`), never of the kind's name.
"""

# Recorded with `memory_size` even by a kind that does not read them (the
# dense-KV memory): runs have always recorded them, and `--resume` compares.
RECORDED_WITH = {"memory_size": ("num_neighbors", "retrieval")}


def preset_of(args):
    """The `--preset`'s dict, or SystemExit naming the presets."""
    from keras_memory.models import PRESETS

    if args.preset not in PRESETS:
        raise SystemExit(f"Unknown --preset {args.preset!r}; choose from {sorted(PRESETS)}.")
    return PRESETS[args.preset]


def base_run_config(args, segment, window):
    """What every run records: kind, preset, sizes, batch, seed, data, precision, tokenizer."""
    return {
        "kind": args.kind,
        "preset": args.preset,
        "segment_length": segment,
        "window_length": window,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "data": args.data,
        "max_documents": args.max_documents,
        "precision": args.precision,
        "tokenizer": args.tokenizer,
    }


def kind_options(args, preset, segment):
    """The `--kind`'s own options from its flags; an unset one is the preset's, if it has it.

    Raises:
        SystemExit: the memory size does not fit the segment or `--num-neighbors`.
    """
    from keras_memory.cli.kind_flags import kind_flags
    from keras_memory.memories import get_kind

    flags = kind_flags()
    names = [name for name in get_kind(args.kind).option_names() if name in flags]
    for name in list(names):
        names += [extra for extra in RECORDED_WITH.get(name, ()) if extra not in names]
    options = {}
    for name in names:
        value = getattr(args, name, None)
        value = preset.get(name) if value is None else value
        if value is not None:
            options[name] = value
    _check_memory_size(options, segment)
    return options


def _check_memory_size(options, segment):
    if "memory_size" not in options:
        return
    size, neighbors = options["memory_size"], options.get("num_neighbors", 0)
    if size % segment or neighbors > size:
        raise SystemExit(
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
