"""`keras-memory generate`: continue prompts with a trained run's model.

One `--prompt` is printed as it is written, piece by piece; the prompts of
a `--prompt-file` are continued as one batch and printed as one JSON line
each. Every check of the command line (the sampler's flags, the prompts,
`--stop`) is made before the model is loaded.
"""

import json
import re
import sys
import time

from keras_memory.cli.arguments import add_run
from keras_memory.cli.sampler_flags import (
    add_sampler_flags,
    check_sampler_flags,
    make_sampler,
    stop_token_ids,
)
from keras_memory.cli.saved_run import load_run, run_config_of, saved_run_config
from keras_memory.cli.tokenizer import saved_tokenizer
from keras_memory.cli.values import positive_int

HELP = "Continue a prompt, or each line of a file."

# `generate`'s arguments, as the flags that set them (`prompts` is done apart).
_FLAGS = {
    "`max_new_tokens`": "--max-new-tokens",
    "`max_length`": "--max-new-tokens",
    "sampler='greedy'": "--sampler greedy",
    "`sampler`": "--sampler",
    "`stop_token_ids`": "--stop",
}
# The prompt ids decoded before new ids, so a subword's leading space shows.
_CONTEXT_IDS = 16


def add_arguments(parser):
    """Adds `generate`'s flags: the run, the prompts, the length, the sampling."""
    for action in add_run(parser):
        if action.dest == "seed":
            action.help = "Seeds the sampler: the same seed draws the same text."
    prompts = parser.add_mutually_exclusive_group()
    prompts.add_argument("--prompt", default="def ", help="Text to continue.")
    prompts.add_argument(
        "--prompt-file",
        metavar="PATH",
        default=None,
        help="UTF-8 text, one prompt per line (blank lines skipped; - for stdin), continued "
        'as one batch; prints one JSON line per prompt: {"prompt": ..., "text": ...}.',
    )
    parser.add_argument(
        "--max-new-tokens",
        "--num-tokens",
        dest="max_new_tokens",
        type=positive_int,
        default=200,
        help="Tokens to add to each prompt at most.",
    )
    add_sampler_flags(parser)


def run(args, model=None, progress=None):
    """Prints and returns the continued text (a list of them for `--prompt-file`)."""
    import numpy as np

    check_sampler_flags(args)
    prompts = read_prompts(args)
    # The run's tokenizer and `--stop` are checked before the model loads.
    config = run_config_of(args.workdir, progress) if model else saved_run_config(args)
    if config is not None:
        tokenizer = saved_tokenizer(args.workdir, config.get("tokenizer"))
        stop_token_ids(args.stop, tokenizer)
        make_sampler(args, tokenizer.vocab_size)
    if model is None:
        model, progress = load_run(args)
    config = run_config_of(args.workdir, progress)
    tokenizer = saved_tokenizer(args.workdir, config.get("tokenizer"))
    stops = stop_token_ids(args.stop, tokenizer)
    sampler = make_sampler(args, model.vocab_size)
    rows = [np.array([tokenizer.bos_id, *tokenizer.encode(text)], np.int32) for text in prompts]
    continuations = [Continuation(tokenizer, row) for row in rows]
    printer = None
    if args.prompt_file is None:
        print(prompts[0], end="", flush=True)
        printer = StreamPrinter(continuations[0])
    started = time.perf_counter()
    try:
        results = model.generate(
            rows,
            max_new_tokens=args.max_new_tokens,
            stop_token_ids=stops,
            sampler=sampler,
            segment_length=config["segment_length"],
            stream=printer,
        )
    except ValueError as error:
        if printer is not None:
            print(flush=True)  # the prompt's line ends before the error's
        raise ValueError(_as_flags(str(error), args)) from None
    seconds = time.perf_counter() - started
    new_ids = [result[len(row) :] for result, row in zip(results, rows)]
    texts = [
        prompt + continuation.text(ids)
        for prompt, continuation, ids in zip(prompts, continuations, new_ids)
    ]
    if printer is not None:
        printer.finish(texts[0][len(prompts[0]) :])
    else:
        for prompt, text in zip(prompts, texts):
            print(json.dumps({"prompt": prompt, "text": text}, ensure_ascii=False), flush=True)
    count = sum(len(ids) for ids in new_ids)
    print(
        f"{count} tokens in {seconds:.1f} s ({count / max(seconds, 1e-9):.1f} tokens/s).",
        file=sys.stderr,
    )
    return texts[0] if printer is not None else texts


def read_prompts(args):
    """`[--prompt]`, or the non-blank lines of `--prompt-file`; ValueError naming the flag."""
    if args.prompt_file is None:
        return [args.prompt]
    path = args.prompt_file
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as f:
                text = f.read()
    except FileNotFoundError:
        raise ValueError(f"--prompt-file {path} does not exist.") from None
    except UnicodeDecodeError as error:
        raise ValueError(
            f"--prompt-file {path} is not UTF-8 text (byte {error.start} cannot be read)."
        ) from None
    except OSError as error:
        reason = (error.strerror or str(error)).lower()
        raise ValueError(f"--prompt-file {path} cannot be read: {reason}.") from None
    prompts = [line.rstrip("\r") for line in text.split("\n") if line.strip()]
    if not prompts:
        raise ValueError(f"--prompt-file {path} holds no prompt; write one prompt per line.")
    return prompts


class Continuation:
    """Decodes the new ids of one prompt, after its last ids, so the text joins the prompt.

    A SentencePiece piece's leading space is dropped when it is decoded
    alone; decoded after the prompt's last ids, only the new text's own
    characters are cut off.
    """

    def __init__(self, tokenizer, prompt_ids):
        self.tokenizer = tokenizer
        import numpy as np

        self.context = [int(i) for i in prompt_ids[-_CONTEXT_IDS:]]
        self.context_text = tokenizer.decode(np.array(self.context, np.int32))

    def text(self, new_ids):
        """The text `new_ids` add after the prompt (special ids dropped)."""
        import numpy as np

        new_ids = [int(i) for i in new_ids]
        whole = self.tokenizer.decode(np.array(self.context + new_ids, np.int32))
        if whole.startswith(self.context_text):
            return whole[len(self.context_text) :]
        return self.tokenizer.decode(np.array(new_ids, np.int32))


class StreamPrinter:
    """`generate`'s `stream`: prints the text each new token of row 0 adds, as it comes.

    Every call decodes all the new ids so far and prints what was not
    printed yet; a trailing U+FFFD (a character whose UTF-8 bytes are not all
    drawn) waits until it resolves, and text that would change what is
    already printed waits for `finish`.
    """

    def __init__(self, continuation):
        self.continuation = continuation
        self.new_ids = []
        self.shown = ""

    def __call__(self, drawn):
        token = int(drawn[0])
        if token < 0:
            return
        self.new_ids.append(token)
        self._show(self.continuation.text(self.new_ids).rstrip("\ufffd"))

    def finish(self, text):
        """Prints the rest of the continuation `text`, then a newline."""
        self._show(text)
        print(flush=True)

    def _show(self, text):
        if len(text) > len(self.shown) and text.startswith(self.shown):
            print(text[len(self.shown) :], end="", flush=True)
            self.shown = text


def _as_flags(message, args):
    """A library error's message with its argument names replaced by the flags typed."""
    for argument, flag in _FLAGS.items():
        message = message.replace(argument, flag)

    def prompt_flag(match):
        if args.prompt_file is None:
            return "--prompt"
        index = match.group(1)
        return f"--prompt-file prompt {int(index) + 1}" if index else "--prompt-file"

    return re.sub(r"`prompts(?:\[(\d+)\])?`", prompt_flag, message)
