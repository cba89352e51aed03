"""Generation speed: ms per new token of `model.generate`, against a segment and the old path.

For each memory kind, batch size and segment length, a `MemoryLM` of a
preset (untrained: speed does not depend on the weights) continues a batch
of random prompts greedily with `model.generate(..., segment_length=S,
sampler="greedy")`. An untimed call compiles the decoder's steps first;
then calls adding `new_tokens` tokens are timed through the `stream`
callback (up to `repeats` times, fewer once they have taken 30 s):
`first_token_ms` is the first token's arrival (reading the prompt
included) and `per_token_ms` the span to the last token over
`new_tokens - 1` (window and segment ends included). Two references
are measured alongside:

- `segment_forward_ms`: one forward pass over a full `(batch, S)` segment,
  through the same compiled call `generate` uses
  (`keras_memory.backend.compiled_call.compiled_model_call`): what the
  issue's goal reads the per-token cost against.
- `baseline_per_token_ms`: the path `generate` took before the incremental
  decoder (`keras_memory.bench.segment_rerun.greedy_rerun`: one eager
  forward pass over the whole padded segment per token), the median of its
  steps after the first; `baseline_agrees` says whether it drew the same
  tokens as `generate` (it should: both are exact).

The goals (issue #25): `per_token_ms` flat in the segment length (at most
1.5x from 128 to 2048) and at most 1/8 of `segment_forward_ms` at 2048.

`keras-memory bench generate` prints one JSON line per (kind, batch size,
segment length) (`main`).
"""

import argparse
import datetime
import os
import statistics
import time

from keras_memory.bench.records import json_lines_reporter
from keras_memory.memories import get_kind, kind_names

# Keras is imported by the functions that build and time the models, not
# here: the command line adds this module's flags before choosing a backend.

# Memory sizes of the memorizing kinds: at least this, a multiple of the segment.
MIN_MEMORY_SIZE = 4096


def memory_size_for(segment_length, minimum=MIN_MEMORY_SIZE):
    """The smallest multiple of `segment_length` that is at least `minimum`."""
    return -(-minimum // segment_length) * segment_length


def model_options(kind, segment_length, memory_size=None, **overrides):
    """`overrides`, with a `memory_size` for the kinds that have one.

    `memory_size` None gives `memory_size_for(segment_length)`; kinds
    without the option get none.
    """
    if "memory_size" in get_kind(kind).option_names():
        return {**overrides, "memory_size": memory_size or memory_size_for(segment_length)}
    return overrides


def build_model(kind, preset="tiny", **options):
    """A functional `MemoryLM` of `preset` for `kind` and `options` (preset keys), built."""
    from keras_memory.models import MemoryLM

    model = MemoryLM.from_preset(preset, kind=kind, **options)
    model.build({"tokens": (None, None), "reset": (None,)})
    return model


def decoding_mode(model, segment_length, batch_size):
    """How `generate` decodes `model`: `"token"`, `"window"` or `"segment"` a step.

    `"token"`: one token per step through the blocks' step buffers;
    `"window"`: the window holding the newest token is re-read; `"segment"`:
    the whole current segment is (`IncrementalDecoder`'s modes).
    """
    from keras_memory.models import IncrementalDecoder

    functional, call, *step = model.generation_model()
    decoder = IncrementalDecoder(functional, segment_length, batch_size, call, *step)
    mode = getattr(decoder, "mode", "window")
    if mode == "window" and decoder.unit_length == segment_length:
        return "segment"
    return mode


def random_prompts(vocab_size, batch_size, prompt_length, seed=0):
    """int32 `(batch, prompt_length)`: a BOS id, then ids drawn from `[3, vocab_size)`."""
    import numpy as np

    prompts = np.random.default_rng(seed).integers(3, vocab_size, (batch_size, prompt_length))
    prompts[:, 0] = 1  # BOS: each prompt starts a document
    return prompts.astype(np.int32)


def time_generate(model, prompts, segment_length, new_tokens, repeats=3, budget_s=30.0):
    """Times greedy `model.generate`: its cost per new token and its first token.

    An untimed call adding 2 tokens compiles the steps (the whole-segment
    call is compiled by `time_segment_forward`, called first). Then, up to
    `repeats` times (fewer once the calls have taken `budget_s`: the
    whole-segment kinds at long segments take minutes a call on a CPU), a
    call adds `new_tokens` tokens while its `stream` callback stamps the
    time each token arrives. The first stamp gives the first token's time
    (reading the prompt included); the span from the first stamp to the
    last, over `new_tokens - 1`, the cost of each further token, window and
    segment ends included. Medians over the repeats.

    Returns:
        `(ids, per_token_s, first_token_s, warmup_s)`, `ids` the int32 new
        tokens `(batch, new_tokens)`.
    """
    import numpy as np

    def run(tokens):
        stamps = []
        start = time.perf_counter()
        rows = model.generate(
            list(prompts),
            max_new_tokens=tokens,
            stop_token_ids=None,
            sampler="greedy",
            segment_length=segment_length,
            stream=lambda drawn: stamps.append(time.perf_counter()),
        )
        ids = np.stack([row[prompts.shape[1] :] for row in rows])
        return time.perf_counter() - start, ids, stamps[0] - start, stamps

    warmup_s = run(2)[0]
    spent, firsts, per_tokens = 0.0, [], []
    while len(per_tokens) < repeats and spent < budget_s:
        seconds, ids, first, stamps = run(new_tokens)
        spent += seconds
        firsts.append(first)
        per_tokens.append((stamps[-1] - stamps[0]) / (len(stamps) - 1))
    return ids, statistics.median(per_tokens), statistics.median(firsts), warmup_s


def time_segment_forward(model, batch_size, segment_length, repeats=3, budget_s=30.0):
    """Median seconds of one compiled forward pass over a full `(batch, S)` segment.

    The call is `generate`'s own (`model.generation_model()`, a
    `compiled_model_call`), from the initial state; one untimed call
    compiles it, then up to `repeats` timed calls (fewer past `budget_s`).
    """
    import numpy as np
    from keras import ops

    functional, call = model.generation_model()[:2]
    tokens = random_prompts(model.vocab_size, batch_size, segment_length, seed=1)
    reset = np.ones((batch_size,), bool)
    state = functional.initial_state(batch_size)
    position = np.int32(segment_length - 1)
    times = []
    while len(times) < repeats + 1 and sum(times[1:]) < budget_s:
        start = time.perf_counter()
        logits, _ = call(tokens, reset, state, position)
        ops.convert_to_numpy(logits)  # waits for the pass (one compiled program)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def measure_generation(
    kind,
    batch_size=1,
    segment_length=128,
    preset="tiny",
    new_tokens=64,
    prompt_length=100,
    baseline_tokens=8,
    repeats=3,
    memory_size=None,
    seed=0,
    **overrides,
):
    """Times `generate`, one segment's forward pass and the old path for one setting.

    Args:
        kind: str. A memory kind.
        batch_size: int. Prompts continued together.
        segment_length: int. Given to `generate` (and the baseline).
        preset: str. Model preset.
        new_tokens: int >= 2. Tokens `generate` adds to each prompt.
        prompt_length: int. Tokens of each prompt (BOS included).
        baseline_tokens: int. Tokens the old path adds (its first step
            untimed); 0 skips it.
        repeats: int. Timed `generate` calls at most (fewer past 30 s).
        memory_size: int or None. Of the memorizing kinds; None:
            `memory_size_for(segment_length)`.
        seed: int. Weights and prompts.
        **overrides: preset keys or block options.

    Returns:
        `(record, ids)`: the JSON record and `{"generate": ids, "baseline":
        ids}` (int32 `(batch, tokens)`; the baseline's None when skipped).
    """
    import keras
    import numpy as np

    from keras_memory.backend import device_name
    from keras_memory.bench.segment_rerun import greedy_rerun

    if min(batch_size, segment_length, prompt_length, repeats) < 1 or new_tokens < 2:
        raise ValueError(
            "`batch_size`, `segment_length`, `prompt_length` and `repeats` must be >= 1, "
            "`new_tokens` >= 2."
        )
    if baseline_tokens < 0:
        raise ValueError(f"`baseline_tokens` must be >= 0; got {baseline_tokens}.")
    from keras_memory.models import PRESETS

    keras.utils.set_random_seed(seed)
    options = model_options(kind, segment_length, memory_size, **overrides)
    model = build_model(kind, preset, **options)
    prompts = random_prompts(model.vocab_size, batch_size, prompt_length, seed)
    forward = time_segment_forward(model, batch_size, segment_length)
    ids, per_token, first, warmup_s = time_generate(
        model, prompts, segment_length, new_tokens, repeats
    )
    baseline_ids, baseline = None, None
    if baseline_tokens:
        baseline_ids, steps = greedy_rerun(model, prompts, segment_length, baseline_tokens)
        baseline = statistics.median(steps[1:] or steps)
    window = model.decoding_window_length()
    agrees = None
    if baseline_ids is not None:
        shared = min(new_tokens, baseline_tokens)
        agrees = bool(np.array_equal(ids[:, :shared], baseline_ids[:, :shared]))
    record = {
        "benchmark": "generate",
        "backend": keras.backend.backend(),
        "preset": preset,
        "kind": kind,
        "batch_size": batch_size,
        "segment_length": segment_length,
        "window_length": {**PRESETS.get(preset, {}), **options}.get("window_length"),
        "decode_unit": window if window and segment_length % window == 0 else segment_length,
        "decode_mode": decoding_mode(model, segment_length, batch_size),
        "memory_size": options.get("memory_size"),
        **{k: v for k, v in overrides.items() if isinstance(v, (int, float, str, bool))},
        "prompt_length": prompt_length,
        "new_tokens": new_tokens,
        "per_token_ms": round(per_token * 1e3, 4),
        "first_token_ms": round(first * 1e3, 4),
        "tokens_per_s": round(batch_size / per_token, 1),
        "segment_forward_ms": round(forward * 1e3, 4),
        "per_token_over_segment_forward": round(per_token / forward, 4),
        "warmup_s": round(warmup_s, 2),
        "baseline_tokens": baseline_tokens,
        "baseline_per_token_ms": None if baseline is None else round(baseline * 1e3, 4),
        "speedup_vs_baseline": None if baseline is None else round(baseline / per_token, 2),
        "baseline_agrees": agrees,
        "device": device_name(),
        # Other work on the host slows a CPU run: its 1-minute load average.
        "host_load_1m": round(os.getloadavg()[0], 2),
        "date": datetime.date.today().isoformat(),
    }
    return record, {"generate": ids, "baseline": baseline_ids}


def _int_list(text):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated ints; got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive ints; got {text!r}")
    return values


def add_arguments(parser):
    """Adds `bench generate`'s options to `parser` (an `argparse.ArgumentParser`)."""
    parser.add_argument(
        "--kinds",
        default=",".join(kind_names()),
        help="Comma-separated memory kinds (default: all).",
    )
    parser.add_argument(
        "--batch-sizes", type=_int_list, default=[1, 8], help="Comma-separated (default 1,8)."
    )
    parser.add_argument(
        "--segment-lengths",
        type=_int_list,
        default=[128, 512, 2048],
        help="Comma-separated (default 128,512,2048).",
    )
    parser.add_argument("--preset", default="tiny", help="Model preset.")
    parser.add_argument(
        "--new-tokens", type=int, default=64, help="Tokens generate adds per prompt (>= 2)."
    )
    parser.add_argument(
        "--prompt-length", type=int, default=100, help="Tokens per prompt (BOS included)."
    )
    parser.add_argument(
        "--baseline-tokens",
        type=int,
        default=8,
        help="Tokens of the old whole-segment path (the first untimed); 0 skips it.",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="Timed generate calls, at most: fewer once they have taken 30 s.",
    )
    parser.add_argument(
        "--output", default=None, help="Append each record (a JSON line) to this file too."
    )


def main(args):
    """Runs `keras-memory bench generate` on `args`: one JSON line per setting; the records."""
    kinds = [k for k in args.kinds.split(",") if k]
    if not kinds or set(kinds) - set(kind_names()):
        raise ValueError(f"`--kinds` must name kinds of {kind_names()}; got {args.kinds!r}.")
    report = json_lines_reporter(args.output)
    records = []
    for kind in kinds:
        for batch_size in args.batch_sizes:
            for segment_length in args.segment_lengths:
                record, _ = measure_generation(
                    kind,
                    batch_size,
                    segment_length,
                    preset=args.preset,
                    new_tokens=args.new_tokens,
                    prompt_length=args.prompt_length,
                    baseline_tokens=args.baseline_tokens,
                    repeats=args.repeats,
                )
                report(record)
                records.append(record)
    return records


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(parser)
    main(parser.parse_args())
