"""Train a memory LM over many devices with `keras.distribution` (JAX): TPU, GPUs or CPU.

The devices form a `(batch, model)` mesh. The batch axis splits the batch and,
with it, the memory: each device keeps the XL cache, kNN memory, recurrent or
compressed state of its own rows only (`keras.distribution.DataParallel` would
replicate it). The model axis splits attention heads and the feed-forward
width (`--model-parallel`), and the memory's heads with them. Checkpoints are
the usual `WORKDIR/checkpoints/step-N`; a rerun resumes from the newest one,
memory included, on any mesh.

    # 8 simulated CPU devices (any laptop): 4-way data x 2-way model parallel
    python recipes/distributed_jax.py --cpu-devices 8 --model-parallel 2 --kind memorizing
    # every GPU of the host, or every core of a TPU VM (pip install "jax[tpu]")
    python recipes/distributed_jax.py --kind melodi --preset small_d512 --batch-size 32
    # a TPU pod slice: run the same command on every host; jax.distributed
    # finds the others (`--multi-host`)

ScaNN retrieval (`--retrieval scann`) is a host call (`jax.pure_callback`). In
a step sharded over several devices XLA puts it on device 0 while the others
wait in a collective; on simulated CPU devices it never ran and XLA aborted,
and TPU cores cannot make host calls at all. So with more than one device the
recipe uses the exact on-device top-k instead, with a warning (the library
refuses `retrieval="scann"` under such a distribution with a clear error).
"""

import argparse
import json
import os
import sys
import warnings


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="xl", help="local|xl|memorizing|...|melodi")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--memory-size", type=int, default=8192, help="memorizing kinds")
    parser.add_argument("--retrieval", default="exact", help="memorizing: exact|approx|scann")
    parser.add_argument("--batch-size", type=int, default=8, help="global batch")
    parser.add_argument("--segment-length", type=int, default=None)
    parser.add_argument("--steps", type=int, default=200, help="total steps of the run")
    parser.add_argument("--checkpoint-every", type=int, default=50)
    parser.add_argument("--model-parallel", type=int, default=1, help="devices per model")
    parser.add_argument("--cpu-devices", type=int, default=0, help="simulate this many CPU devices")
    parser.add_argument("--multi-host", action="store_true", help="jax.distributed.initialize()")
    parser.add_argument("--data", default=None, help="text folder; default: Python sources")
    parser.add_argument("--max-documents", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default="workdir/distributed_jax")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.cpu_devices:
        # Must be set before JAX starts: it fixes the device list at import.
        os.environ["JAX_PLATFORMS"] = "cpu"
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "")
            + f" --xla_force_host_platform_device_count={args.cpu_devices}"
        )
    backend = os.environ.setdefault("KERAS_BACKEND", "jax")
    if backend != "jax":
        sys.exit(
            f"error: keras.distribution needs KERAS_BACKEND=jax (got {backend}); "
            "for TensorFlow use recipes/distributed_tf.py"
        )
    import jax
    import keras

    from keras_memory.data import SegmentStream, StepWindow, python_source_corpus, text_files_corpus
    from keras_memory.distribution import model_parallel, state_layouts
    from keras_memory.memories import get_kind
    from keras_memory.models import PRESETS, MemoryLM
    from keras_memory.training import CheckpointEvery, load_checkpoint, read_losses

    if args.multi_host:
        jax.distributed.initialize()
    devices = keras.distribution.list_devices()
    if args.retrieval == "scann" and (len(devices) > 1 or jax.default_backend() == "tpu"):
        warnings.warn(
            "ScaNN is a host call and cannot run inside a step sharded over "
            f"{len(devices)} {jax.default_backend()} devices: using exact on-device "
            "retrieval instead (docs/scale-out.md).",
            stacklevel=1,
        )
        args.retrieval = "exact"
    distribution = model_parallel(devices, model_parallel_size=args.model_parallel)
    batch_shards = distribution.device_mesh.shape[0]
    if args.batch_size % batch_shards:
        sys.exit(
            f"error: --batch-size {args.batch_size} must be a multiple of the batch "
            f"axis of the mesh ({batch_shards} = {len(devices)} devices / "
            f"--model-parallel {args.model_parallel})"
        )
    keras.distribution.set_distribution(distribution)
    keras.utils.set_random_seed(args.seed)

    model, progress = load_checkpoint(args.workdir)  # created inside the distribution
    first_step = progress["step"] if progress else 0
    if model is None:
        options = get_kind(args.kind).own_options(
            memory_size=args.memory_size, retrieval=args.retrieval
        )
        if args.segment_length:
            options["segment_length"] = args.segment_length
        model = MemoryLM.from_preset(args.preset, kind=args.kind, stateful=True, **options)
        model.compile(optimizer=keras.optimizers.AdamW(3e-3))
    segment_length = args.segment_length or PRESETS[args.preset]["segment_length"]
    if args.data:
        documents = text_files_corpus(args.data)
    else:
        documents = python_source_corpus("train", max_documents=args.max_documents)
    stream = SegmentStream(documents.tokenize(), args.batch_size, segment_length, seed=args.seed)
    if first_step < args.steps:
        model.fit(
            StepWindow(stream, first_step=first_step, num_steps=args.steps - first_step),
            epochs=1,
            verbose=0,
            callbacks=[CheckpointEvery(args.workdir, args.checkpoint_every, first_step)],
        )
    for record in read_losses(args.workdir):
        print(json.dumps(record))
    shardings = {
        path: str(getattr(variable.value.sharding, "spec", "single device"))
        for path, variable in ((v.path, v) for v in model.non_trainable_variables)
        if path in state_layouts(model)
    }
    print(
        json.dumps(
            {
                "devices": len(devices),
                "mesh": dict(
                    zip(distribution.device_mesh.axis_names, distribution.device_mesh.shape)
                ),
                "resumed_from": first_step,
                "state_shardings": shardings,
            }
        )
    )


if __name__ == "__main__":
    main()
