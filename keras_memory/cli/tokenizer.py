"""The tokenizer of a run: trained (or bytes) and saved by `train`, reloaded after."""

# SentencePiece training costs about 13 s per MB on two cores; a sample suffices.
TOKENIZER_SAMPLE_BYTES = 4_000_000


def training_tokenizer(args, corpus, resuming):
    """The workdir's tokenizer when resuming; else one trained (or bytes) and saved there."""
    from keras_memory.data import make_tokenizer

    if resuming:
        return saved_tokenizer(args.workdir, args.tokenizer)
    if args.tokenizer.startswith("hub:"):
        return make_tokenizer("hub", preset=args.tokenizer[4:], directory=args.workdir)
    texts, total = [], 0
    for text in corpus.texts:
        if total >= TOKENIZER_SAMPLE_BYTES:
            break
        texts.append(text)
        total += len(text)
    if args.tokenizer != "bytes":
        print(f"Training a {args.tokenizer} vocabulary on {total:,} characters...")
    return make_tokenizer(
        args.tokenizer, texts=texts, vocab_size=args.vocab_size, directory=args.workdir
    )


def saved_tokenizer(workdir, recorded):
    """The tokenizer saved in `workdir` by a run that recorded `--tokenizer recorded`.

    Runs from before tokenizers were saved read bytes (and recorded none or
    `bytes`); a run with another tokenizer whose files are gone is refused,
    never scored or sampled with bytes instead.

    Raises:
        ValueError: the saved tokenizer is missing or damaged (the file named).
    """
    from keras_memory.data import ByteTokenizer, load_tokenizer

    try:
        return load_tokenizer(workdir)
    except FileNotFoundError as error:
        if recorded in (None, "bytes"):
            return ByteTokenizer()
        missing = error.filename or "tokenizer.json"
        raise ValueError(
            f"--workdir {workdir} was trained with --tokenizer {recorded}, but its tokenizer "
            f"file {missing} is missing; restore it (the model's ids mean nothing without it)."
        ) from None
    except (OSError, RuntimeError) as error:
        raise ValueError(
            f"--workdir {workdir}: its --tokenizer {recorded} files cannot be read ({error})."
        ) from None
