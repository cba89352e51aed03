"""`keras-memory generate`: continue a prompt with a trained run's model."""

from keras_memory.cli.arguments import add_common
from keras_memory.cli.saved_run import load_run
from keras_memory.cli.tokenizer import saved_tokenizer

HELP = "Continue a prompt."


def add_arguments(parser):
    """Adds `generate`'s flags: the common ones, the prompt and the sampling."""
    add_common(parser)
    parser.add_argument("--prompt", default="def ", help="Text to continue.")
    parser.add_argument("--num-tokens", type=int, default=200, help="Tokens to generate.")
    parser.add_argument("--temperature", type=float, default=0.8, help="0 for greedy.")
    parser.add_argument("--top-k", type=int, default=40, help="Sample among the top k.")
    parser.add_argument(
        "--top-p", type=float, default=None, help="Nucleus sampling: keep probability mass p."
    )


def run(args, model=None, progress=None):
    """Prints and returns the prompt and its continuation by the run of `--workdir`."""
    from keras_memory.generation import generate as sample

    if model is None:
        model, progress = load_run(args)
    tokenizer = saved_tokenizer(args.workdir)
    prompt = [tokenizer.bos_id, *tokenizer.encode(args.prompt).tolist()]
    ids = sample(
        model,
        prompt,
        args.num_tokens,
        progress["run_config"]["segment_length"],
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
    )
    text = args.prompt + tokenizer.decode(ids)
    print(text)
    return text
