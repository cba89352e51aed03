"""`generate`'s sampling flags: `--sampler`, the flags each sampler reads, `--stop`.

A flag typed for a sampler that does not read it (`--top-p` with `--sampler
top_k`) would be ignored, so it is refused, as `train` refuses another
kind's options. Nothing here imports Keras: `--help` answers at once.
"""

import argparse
import re

from keras_memory.cli.values import non_negative_int, positive_float, probability_mass

# keras-hub's samplers that draw each token from its own logits
# (`keras_memory.models.samplers.STEP_SAMPLERS`), and the flags each reads.
SAMPLERS = {
    "greedy": (),
    "random": ("temperature",),
    "top_k": ("top_k", "temperature"),
    "top_p": ("top_p", "temperature"),
}
SAMPLER_FLAGS = {"temperature": "--temperature", "top_k": "--top-k", "top_p": "--top-p"}

# What `--stop` reads as an escape: `--stop '\n'` is a newline.
_ESCAPES = {"\\n": "\n", "\\t": "\t", "\\r": "\r", "\\\\": "\\"}


def temperature(text):
    """An argparse `type`: a finite number > 0; 0 is pointed at `--sampler greedy`."""
    try:
        zero = float(text) == 0
    except ValueError:
        zero = False
    if zero:
        raise argparse.ArgumentTypeError(
            f"expected a number > 0; got {text!r} (for the most likely token, use --sampler greedy)"
        )
    return positive_float(text)


def add_sampler_flags(parser):
    """Adds `--sampler`, `--temperature`, `--top-k`, `--top-p` and `--stop`."""
    parser.add_argument(
        "--sampler",
        choices=tuple(SAMPLERS),
        default="top_k",
        help="How each token is drawn: the most likely (greedy), from the whole distribution "
        "(random), among the --top-k most likely (top_k) or within the --top-p probability "
        "mass (top_p).",
    )
    parser.add_argument(
        "--temperature",
        type=temperature,
        default=0.8,
        help="Divides the logits; > 0 (random, top_k, top_p).",
    )
    parser.add_argument(
        "--top-k",
        type=non_negative_int,
        default=40,
        help="Draw among the k most likely tokens; 0 for no limit (top_k).",
    )
    parser.add_argument(
        "--top-p",
        type=probability_mass,
        default=0.9,
        help="Draw within the smallest set of tokens whose probability reaches p, in (0, 1] "
        "(top_p).",
    )
    parser.add_argument(
        "--stop",
        action=_AppendStop,
        metavar="TEXT",
        default=None,
        help="End a continuation after this text, which must be one token of the run's "
        "tokenizer (e.g. '\\n' with bytes); repeatable. The end-of-document token always "
        "ends it.",
    )


class _AppendStop(argparse.Action):
    """argparse's `append`, for a default that is not a list.

    `CommandParser` marks untyped flags by swapping in a marker default,
    which argparse's own `append` would try to append to.
    """

    def __call__(self, parser, namespace, values, option_string=None):
        items = getattr(namespace, self.dest, None)
        setattr(namespace, self.dest, [*(items if isinstance(items, list) else ()), values])


def check_sampler_flags(args):
    """Raises ValueError naming each sampler flag typed that `--sampler` does not read."""
    reads = SAMPLERS[args.sampler]
    foreign = [dest for dest in SAMPLER_FLAGS if dest in args.given and dest not in reads]
    if foreign:
        described = "; ".join(
            f"{SAMPLER_FLAGS[dest]} is read by --sampler "
            f"{' or '.join(name for name, flags in SAMPLERS.items() if dest in flags)} only"
            for dest in foreign
        )
        raise ValueError(f"--sampler {args.sampler} does not read it: {described}.")


def make_sampler(args, vocab_size):
    """The `keras_hub.samplers.Sampler` of the flags, seeded with `--seed`.

    `--top-k 0` (or a k that covers the vocabulary) draws from the whole
    distribution, as `--sampler random`.

    Raises:
        ValueError: a typed `--top-k` larger than the vocabulary.
    """
    import keras_hub

    samplers = keras_hub.samplers
    if args.sampler == "greedy":
        return samplers.GreedySampler()
    if args.sampler == "top_p":
        return samplers.TopPSampler(p=args.top_p, temperature=args.temperature, seed=args.seed)
    k = args.top_k if args.sampler == "top_k" else 0
    if k > vocab_size and "top_k" in args.given:
        raise ValueError(
            f"--top-k {k} is larger than the run's vocabulary ({vocab_size} tokens); "
            "give a smaller k, or --top-k 0 for no limit."
        )
    if k == 0 or k >= vocab_size:
        return samplers.RandomSampler(temperature=args.temperature, seed=args.seed)
    return samplers.TopKSampler(k=k, temperature=args.temperature, seed=args.seed)


def unescape(text):
    """`text` with `\\n`, `\\t`, `\\r` and `\\\\` typed literally read as what they name."""
    return re.sub(r"\\[ntr\\]", lambda match: _ESCAPES[match.group()], text)


def stop_token_ids(stops, tokenizer):
    """The ids generation stops at: the end-of-document id and each `--stop` text's one token.

    Raises:
        ValueError: naming `--stop`, for a text that is not exactly one token.
    """
    ids = [int(tokenizer.eos_id)]
    for typed in stops or ():
        text = unescape(typed)
        encoded = [int(i) for i in tokenizer.encode(text)]
        if len(encoded) != 1:
            raise ValueError(
                f"--stop {text!r} encodes to {len(encoded)} tokens of the run's "
                f"{tokenizer.kind} tokenizer; each --stop must be exactly one token."
            )
        ids += [i for i in encoded if i not in ids]
    return ids
