"""`keras-memory generate`: continue a prompt with a trained run's model."""

import sys
import time

from keras_memory.cli.arguments import add_run
from keras_memory.cli.saved_run import load_run, run_config_of, saved_run_config
from keras_memory.cli.tokenizer import saved_tokenizer
from keras_memory.cli.values import (
    non_negative_float,
    non_negative_int,
    positive_int,
    probability_mass,
)

HELP = "Continue a prompt."

# The sampler's arguments, as the flags that set them.
_FLAGS = {
    "`num_tokens`": "--num-tokens",
    "`temperature`": "--temperature",
    "`top_k`": "--top-k",
    "`top_p`": "--top-p",
    "`prompt`": "--prompt",
}


def add_arguments(parser):
    """Adds `generate`'s flags: the run, the prompt and the sampling."""
    add_run(parser)
    parser.add_argument("--prompt", default="def ", help="Text to continue.")
    parser.add_argument("--num-tokens", type=positive_int, default=200, help="Tokens to generate.")
    parser.add_argument("--temperature", type=non_negative_float, default=0.8, help="0 for greedy.")
    parser.add_argument(
        "--top-k",
        type=non_negative_int,
        default=40,
        help="Sample among the k most likely tokens; 0 for no limit.",
    )
    parser.add_argument(
        "--top-p",
        type=probability_mass,
        default=None,
        help="Nucleus sampling: keep probability mass p, in (0, 1] (default: off).",
    )


def run(args, model=None, progress=None):
    """Prints and returns the prompt and its continuation by the run of `--workdir`."""
    from keras_memory.generation import generate as sample

    # The run's tokenizer is checked before the model loads.
    config = run_config_of(args.workdir, progress) if model else saved_run_config(args)
    if config is not None:
        saved_tokenizer(args.workdir, config.get("tokenizer"))
    if model is None:
        model, progress = load_run(args)
    config = run_config_of(args.workdir, progress)
    tokenizer = saved_tokenizer(args.workdir, config.get("tokenizer"))
    prompt = [tokenizer.bos_id, *tokenizer.encode(args.prompt).tolist()]
    started = time.perf_counter()
    try:
        ids = sample(
            model,
            prompt,
            args.num_tokens,
            config["segment_length"],
            temperature=args.temperature,
            top_k=args.top_k or None,
            top_p=args.top_p,
            seed=args.seed,
        )
    except ValueError as error:
        # The sampler names its arguments; the user typed flags.
        message = str(error)
        for argument, flag in _FLAGS.items():
            message = message.replace(argument, flag)
        raise ValueError(message) from None
    seconds = time.perf_counter() - started
    text = args.prompt + tokenizer.decode(ids)
    print(text)
    print(
        f"{len(ids)} tokens in {seconds:.1f} s ({len(ids) / seconds:.1f} tokens/s).",
        file=sys.stderr,
    )
    return text
