"""The speed ceiling: a plain Keras decoder of a speed config's size, with no memory.

What the memory models' training speed is read against (the goals in
docs/performance.md): the width, depth, heads, window and segment of a speed
config (`keras_memory.bench.configs.SPEED_CONFIGS`, or a preset), built from
stock Keras layers (pre-norm blocks of multi-head attention and a ReLU
feed-forward network, `keras.ops.dot_product_attention`), carrying nothing
from one step to the next. Two attention patterns:

- `block`: the segment is cut into windows of `window_length` tokens, each
  attending causally inside itself only; the cheapest model a memory layer
  can be compared to (`window_length / 2` keys per query on average).
- `window2`: each window attends to [the previous window, itself] under a
  band mask (`keras_memory.ops.masks.window_mask`, the query itself and the
  `window_length - 1` tokens before it), the shape a Transformer-XL sliding
  window computes, without its cache (zeros before the first window).

It is timed as `keras_memory.bench.speed` times the memory models: one step
is one `train_on_batch` (AdamW(1e-4), cross-entropy on the logits) on a
random `batch_size x segment_length` batch; after `warmup` untimed steps,
`steps` steps are timed one by one until their update has finished and the
median gives `tokens_per_s`. FLOPs are counted by the same convention
(`keras_memory.bench.speed.model_flops_per_token`, with the keys per query
of the pattern).

`keras-memory bench ceiling --config p150 --attention window2`
prints one JSON line (`main`).
"""

import argparse
import datetime
import resource

from keras_memory.bench.config_flags import add_config_flags
from keras_memory.bench.configs import SPEED_CONFIGS
from keras_memory.bench.records import json_lines_reporter

# Keras (and what needs it) is imported by the functions that build and time
# the model, not here: the command line adds this module's flags
# (`add_arguments`) before Keras, and so its backend, is imported.

ATTENTIONS = ("block", "window2")

# The preset keys `main` takes as options.
_OVERRIDES = ("segment_length", "window_length", "vocab_size")


def dense_decoder(settings, attention="block", batch_size=None, precision="float32"):
    """The ceiling's model: a plain Keras decoder of a preset's size, logits in float32.

    Args:
        settings: dict of preset keys: `vocab_size`, `hidden_dim`,
            `num_layers`, `num_heads`, `head_dim`, `intermediate_dim`,
            `window_length`, `segment_length`.
        attention: `"block"` or `"window2"` (see the module's docstring).
        batch_size: int or None. The input's static batch size.
        precision: `"float32"` or `"mixed_bfloat16"`.

    Returns:
        A `keras.Model` from `(batch, segment_length)` int32 tokens to
        `(batch, segment_length, vocab_size)` logits.
    """
    import keras
    from keras import layers

    from keras_memory.bench.decoder_block import DecoderBlock

    if attention not in ATTENTIONS:
        raise ValueError(f"`attention` must be one of {ATTENTIONS}; got {attention!r}.")
    window, segment = settings["window_length"], settings["segment_length"]
    if segment % window:
        raise ValueError(
            f"The ceiling reads whole windows: `segment_length` ({segment}) must be a "
            f"multiple of `window_length` ({window})."
        )
    tokens = keras.Input((segment,), batch_size=batch_size, dtype="int32")
    x = layers.Embedding(settings["vocab_size"], settings["hidden_dim"], dtype=precision)(tokens)
    for _ in range(settings["num_layers"]):
        x = DecoderBlock(
            settings["hidden_dim"],
            settings["num_heads"],
            settings["head_dim"],
            settings["intermediate_dim"],
            window,
            attention,
            dtype=precision,
        )(x)
    x = layers.RMSNormalization(dtype=precision)(x)
    logits = layers.Dense(settings["vocab_size"], use_bias=False, dtype="float32")(x)
    return keras.Model(tokens, logits, name=f"dense_{attention}")


def keys_per_query(attention, window_length):
    """Keys a query attends to on average: `window_length / 2` in causal blocks,
    `window_length` in the band of `window2`."""
    return window_length / 2 if attention == "block" else window_length


def measure_ceiling(
    attention="block",
    config="tiny",
    steps=10,
    warmup=2,
    precision=None,
    batch_size=None,
    **overrides,
):
    """Trains the plain decoder for `warmup + steps` steps and times the last `steps`.

    Args:
        attention: `"block"` or `"window2"`.
        config: str. A key of `SPEED_CONFIGS` (`d512`, `p150`) or a preset.
        steps: int. Timed steps.
        warmup: int. Untimed steps first.
        precision: `"float32"`, `"mixed_bfloat16"` or None for the config's
            own (float32 unless it names one).
        batch_size: int or None for the config's.
        **overrides: preset keys, e.g. `window_length`, `segment_length`.

    Returns:
        A dict (one JSON line), with the fields of
        `keras_memory.bench.speed.measure_training_speed`'s records
        (`tokens_per_s`, `step_time_s`, `model_tflops_per_s`, `mfu`, ...) and
        `attention` and `keys_per_query` in place of the model kind.
    """
    import keras
    import numpy as np

    from keras_memory.backend.allocator import host_allocator
    from keras_memory.backend.device import device_memory_bytes, device_name
    from keras_memory.bench.speed import mfu, model_flops_per_token, resolve_config
    from keras_memory.bench.step_timing import median_step_time
    from keras_memory.models.presets import PRESETS

    if precision is None:
        precision = SPEED_CONFIGS.get(config, {}).get("precision", "float32")
    preset, options, batch_size = resolve_config(config, batch_size=batch_size, **overrides)
    settings = {**PRESETS[preset], **options}
    model = dense_decoder(settings, attention, batch_size=batch_size, precision=precision)
    model.compile(
        optimizer=keras.optimizers.AdamW(1e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    segment, vocab = settings["segment_length"], settings["vocab_size"]
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(min(4, warmup + steps)):
        tokens = rng.integers(0, vocab, size=(batch_size, segment + 1), dtype=np.int32)
        batches.append((tokens[:, :-1], tokens[:, 1:]))
    step_time, loss = median_step_time(model, batches, warmup, steps)
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    keys = keys_per_query(attention, settings["window_length"])
    flops = model_flops_per_token(
        trainable, settings["num_layers"], settings["num_heads"] * settings["head_dim"], keys
    )
    tokens_per_s = batch_size * segment / step_time
    device = device_name()
    utilisation = mfu(flops * tokens_per_s, device, precision)
    return {
        "benchmark": "ceiling",
        "backend": keras.backend.backend(),
        "config": config,
        "attention": attention,
        "batch_size": batch_size,
        "segment_length": segment,
        "window_length": settings["window_length"],
        "precision": precision,
        **{k: v for k, v in overrides.items() if v is not None},
        "keys_per_query": keys,
        "trainable_params": trainable,
        "step_time_s": round(step_time, 6),
        "tokens_per_s": round(tokens_per_s, 1),
        "model_tflops_per_s": round(flops * tokens_per_s / 1e12, 4),
        "mfu": None if utilisation is None else round(utilisation, 4),
        "peak_device_bytes": device_memory_bytes(peak=True),
        "peak_host_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "loss": round(float(loss), 4),
        "device": device,
        "allocator": host_allocator(),
        "date": datetime.date.today().isoformat(),
    }


def add_arguments(parser):
    """Adds the ceiling's options to `parser` (an `argparse.ArgumentParser`)."""
    parser.add_argument(
        "--attention",
        default="block",
        choices=ATTENTIONS,
        help="block: causal inside each window (the cheapest model); window2: each window "
        "over [previous window, itself], the shape of a Transformer-XL window.",
    )
    add_config_flags(parser)
    parser.add_argument(
        "--output", default=None, help="Append the record (a JSON line) to this file too."
    )


def main(args):
    """Runs the ceiling on `args` (from `add_arguments`): one JSON line; the records."""
    if args.steps < 1 or args.warmup < 0:
        raise ValueError("`--steps` must be >= 1 and `--warmup` >= 0.")
    report = json_lines_reporter(args.output)
    record = measure_ceiling(
        args.attention,
        config=args.config,
        steps=args.steps,
        warmup=args.warmup,
        precision=args.precision,
        batch_size=args.batch_size,
        **{key: getattr(args, key) for key in _OVERRIDES},
    )
    report(record)
    return [record]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(parser)
    main(parser.parse_args())
