"""Training speed: tokens/s, step time, peak memory and model FLOPs utilisation.

One step is one `train_on_batch` of a stateful `MemoryLM` (forward, backward
and an AdamW update, the model's padding-masked cross-entropy) on a random
`batch_size x segment_length` batch; the memory is carried from step to step
(`reset` on the first step only), as in training on long documents. After
`warmup` untimed steps (compilation included), `steps` steps are timed one by
one, each until its update has finished; the median step gives
`tokens_per_s`.

`keras-memory bench speed` measures each model kind in a process of its own
(its peak memory is its own) and, with `--peers`, runs the PyTorch peers of
the same config (`keras_memory.bench.peers`) before and after them, so that
ratios come from one run on one machine.
"""

import datetime
import json
import os
import resource
import subprocess
import sys

import keras
import numpy as np

from keras_memory.backend.allocator import host_allocator
from keras_memory.backend.device import device_memory_bytes, device_name
from keras_memory.bench.configs import PEER_OF_KIND, SPEED_CONFIGS
from keras_memory.bench.records import json_lines_reporter
from keras_memory.bench.step_timing import median_step_time
from keras_memory.memories import MODEL_KINDS, get_kind
from keras_memory.models import PRESETS, MemoryLM

# Dense bfloat16 matmul peaks (no sparsity), FLOP/s, by a fragment of the
# device's name: the denominators of `mfu`.
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def model_flops_per_token(trainable_params, num_layers, attention_width, keys_per_query):
    """Training FLOPs per token by the convention of the plain Keras ceiling.

    `6 * params` for the matmuls of the forward and backward passes plus
    `12 * layers * width * keys` for the attention scores and the weighted
    sum over `keys_per_query` keys. Memory-specific work (kNN search,
    recurrent states, compression) is not counted, so a memory model's MFU
    understates the work its device does. `keras_memory.bench.ceiling`
    counts the plain decoder's FLOPs the same way.

    Args:
        trainable_params: int. Weights (not the memory state).
        num_layers: int.
        attention_width: int. `num_heads * head_dim`.
        keys_per_query: int. The window length of a sliding window.

    Returns:
        float.
    """
    return 6.0 * trainable_params + 12.0 * num_layers * attention_width * keys_per_query


def mfu(flops_per_second, device, precision):
    """Model FLOPs utilisation on a GPU of `PEAK_BF16_FLOPS`, in bfloat16; else None."""
    if precision != "mixed_bfloat16":
        return None
    peak = next((v for name, v in PEAK_BF16_FLOPS.items() if name in device), None)
    return None if peak is None else flops_per_second / peak


def resolve_config(config="tiny", **overrides):
    """The preset, its overrides and the batch size of a speed config.

    Args:
        config: str. A key of `SPEED_CONFIGS` or of `keras_memory.models.PRESETS`.
        **overrides: preset keys (`window_length`, `memory_size`, ...) and
            `batch_size`; None values are ignored.

    Returns:
        `(preset, options, batch_size)`: `options` holds at least
        `window_length` and `segment_length`.
    """
    if config in SPEED_CONFIGS:
        options = dict(SPEED_CONFIGS[config])
        preset = options.pop("preset")
    elif config in PRESETS:
        preset, options = config, {"batch_size": 8}
    else:
        raise ValueError(
            f"`config` must be one of {sorted(SPEED_CONFIGS)} or a preset "
            f"({sorted(PRESETS)}); got {config!r}."
        )
    options.pop("precision", None)
    options |= {k: v for k, v in overrides.items() if v is not None}
    for key in ("window_length", "segment_length"):
        options.setdefault(key, PRESETS[preset][key])
    batch_size = options.pop("batch_size")
    return preset, options, batch_size


def measure_training_speed(
    kind, config="tiny", steps=10, warmup=2, precision=None, batch_size=None, **overrides
):
    """Trains one model kind for `warmup + steps` steps and times the last `steps`.

    Args:
        kind: str. A model kind (`keras_memory.models.MODEL_KINDS`).
        config: str. A key of `SPEED_CONFIGS` (`d512`, `p150`) or a preset.
        steps: int. Timed steps.
        warmup: int. Untimed steps first.
        precision: `"float32"`, `"mixed_bfloat16"` or None for the config's
            own (float32 unless it names one).
        batch_size: int or None for the config's.
        **overrides: preset keys, e.g. `memory_size`, `window_length`,
            and `num_key_value_heads` (the peers' key/value heads are one).

    Returns:
        A dict (one JSON line): `tokens_per_s`, `step_time_s`,
        `model_tflops_per_s`, `mfu` (None off a known GPU or in float32),
        `peak_device_bytes` (None on the CPU), `peak_host_rss_bytes` (of
        this process so far), the config and the final loss.
    """
    if precision is None:
        precision = SPEED_CONFIGS.get(config, {}).get("precision", "float32")
    if "memory_size" not in get_kind(kind).option_names():
        overrides.pop("memory_size", None)
    preset, options, batch_size = resolve_config(config, batch_size=batch_size, **overrides)
    segment = options["segment_length"]
    model = MemoryLM.from_preset(preset, kind=kind, stateful=True, dtype=precision, **options)
    model.build({"tokens": (batch_size, segment), "reset": (batch_size,)})
    model.compile(optimizer=keras.optimizers.AdamW(1e-4))
    rng = np.random.default_rng(0)

    def batch(first):
        tokens = rng.integers(3, model.vocab_size, size=(batch_size, segment + 1), dtype=np.int32)
        return {"tokens": tokens[:, :-1], "reset": np.full((batch_size,), first)}, tokens[:, 1:]

    batches = [batch(i == 0) for i in range(min(4, warmup + steps))]
    step_time, loss = median_step_time(model, batches, warmup, steps)
    settings = {**PRESETS[preset], **options}
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    flops = model_flops_per_token(
        trainable,
        settings["num_layers"],
        settings["num_heads"] * settings["head_dim"],
        settings["window_length"],
    )
    tokens_per_s = batch_size * segment / step_time
    device = device_name()
    utilisation = mfu(flops * tokens_per_s, device, precision)
    return {
        "benchmark": "speed",
        "backend": keras.backend.backend(),
        "config": config,
        "kind": kind,
        "batch_size": batch_size,
        "segment_length": segment,
        "window_length": options["window_length"],
        "precision": precision,
        **{k: v for k, v in overrides.items() if v is not None},
        "trainable_params": trainable,
        "state_params": model.count_params() - trainable,
        "step_time_s": round(step_time, 4),
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


def peer_options(kind, config="tiny", precision=None, batch_size=None, **overrides):
    """The command-line options of `keras_memory.bench.peers` for our config."""
    if precision is None:
        precision = SPEED_CONFIGS.get(config, {}).get("precision", "float32")
    preset, options, batch_size = resolve_config(config, batch_size=batch_size, **overrides)
    settings = {**PRESETS[preset], **options}
    window, segment = settings["window_length"], settings["segment_length"]
    if segment % window:
        raise ValueError(
            f"The peers read whole windows: `segment_length` ({segment}) must be a multiple "
            f"of `window_length` ({window})."
        )
    return [
        PEER_OF_KIND[kind],
        f"--dim={settings['hidden_dim']}",
        f"--depth={settings['num_layers']}",
        f"--heads={settings['num_heads']}",
        f"--window={window}",
        f"--segments={segment // window}",
        f"--batch={batch_size}",
        f"--memory={settings.get('memory_size', 8192)}",
        f"--vocab={settings['vocab_size']}",
        f"--precision={precision}",
    ]


def run_peer(kind, peer_path=None, steps=3, **config):
    """Runs the PyTorch peer of `kind` in a child process; its JSON record.

    Args:
        kind: str. A key of `PEER_OF_KIND`.
        peer_path: str or None. A directory prepended to the child's
            `PYTHONPATH` (where `pip install --target` put the peers).
        steps: int. Timed steps.
        **config: as `measure_training_speed` (`config`, `precision`,
            `batch_size`, preset keys).

    Returns:
        The peer's record; `{"skipped": why}` in it when the peer is not
        installed.
    """
    env = dict(os.environ)
    if peer_path:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (peer_path, env.get("PYTHONPATH")) if p)
    command = [
        sys.executable,
        "-m",
        "keras_memory.bench.peers",
        *peer_options(kind, **config),
        f"--steps={steps}",
    ]
    run = subprocess.run(command, env=env, capture_output=True, text=True)
    lines = run.stdout.strip().splitlines()
    if run.returncode or not lines:
        raise RuntimeError(f"The {kind} peer failed:\n{run.stderr[-3000:]}")
    return json.loads(lines[-1])


# The preset keys (and attention option) `bench speed` takes as options.
_OVERRIDES = (
    "segment_length",
    "window_length",
    "vocab_size",
    "memory_size",
    "num_key_value_heads",
)


def _measure_in_child(kind, args):
    command = [sys.executable, "-m", "keras_memory.cli", "bench", "speed", "--kind", kind]
    for flag in ("config", "steps", "warmup", "precision", "batch_size", *_OVERRIDES):
        value = getattr(args, flag)
        if value is not None:
            command.append(f"--{flag.replace('_', '-')}={value}")
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(f"Measuring {kind} failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main(args):
    """Runs `keras-memory bench speed`: one JSON line per measurement."""

    report = json_lines_reporter(args.output)
    kinds = [k for k in args.kind.split(",") if k]
    if not kinds or set(kinds) - set(MODEL_KINDS):
        raise ValueError(f"`--kind` must name kinds of {MODEL_KINDS}; got {args.kind!r}.")
    if args.steps < 1 or args.warmup < 0 or args.peer_steps < 1:
        raise ValueError("`--steps` and `--peer-steps` must be >= 1 and `--warmup` >= 0.")
    config = {
        "config": args.config,
        "precision": args.precision,
        "batch_size": args.batch_size,
        **{key: getattr(args, key) for key in _OVERRIDES},
    }
    resolve_config(args.config)  # a clear error before any process starts
    if args.num_key_value_heads is not None:
        refusing = [
            k for k in kinds if not get_kind(k).takes_attention_option("num_key_value_heads")
        ]
        if refusing:
            raise ValueError(
                f"--num-key-value-heads: the {', '.join(refusing)} kind does not take it; "
                "measure that kind in a command of its own."
            )
    peers = [k for k in kinds if k in PEER_OF_KIND] if args.peers else []
    records = []
    for when, group in (("before", peers), ("ours", kinds), ("after", peers)):
        for kind in group:
            if when == "ours":
                record = (
                    _measure_in_child(kind, args)
                    if len(kinds) > 1
                    else measure_training_speed(
                        kind, steps=args.steps, warmup=args.warmup, **config
                    )
                )
            else:
                record = run_peer(kind, args.peer_path, steps=args.peer_steps, **config)
                record["when"] = when
            records.append(record)
            report(record)
    return records
