"""The tokenizer of a run: trained (or bytes) and saved by `train`, reloaded after."""

# SentencePiece training costs about 13 s per MB on two cores; a sample suffices.
TOKENIZER_SAMPLE_BYTES = 4_000_000


def training_tokenizer(args, corpus, resuming):
    """The workdir's tokenizer when resuming; else one trained (or bytes) and saved there."""
    from keras_memory.data import load_tokenizer, make_tokenizer

    if resuming:
        return load_tokenizer(args.workdir)
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


def saved_tokenizer(workdir):
    """The tokenizer saved in `workdir`; bytes when there is none (older runs)."""
    from keras_memory.data import ByteTokenizer, load_tokenizer

    try:
        return load_tokenizer(workdir)
    except FileNotFoundError:
        return ByteTokenizer()
