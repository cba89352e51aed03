"""Train a memory LM with tf.distribute: TPUStrategy, or MirroredStrategy over GPUs or CPUs.

Memory is per batch row, so each replica keeps the memory of its own rows.
Stateful Keras variables cannot do that under `tf.distribute`: created in the
strategy's scope they become `MirroredVariable`s, one value kept identical on
every replica. So this recipe uses the models' functional form: the memory
state is a per-replica value (`PerReplica`) that each replica reads and
returns every step, and a global batch is split into fixed, contiguous row
blocks (replica r always reads rows r*b .. r*b+b-1) so that a row's memory
stays with its rows. Gradients are all-reduced by the Keras optimizer; the
per-replica loss is divided by the global count of non-padding targets, so
the summed loss is the single-device mean.

Checkpoints (`--checkpoint-every`): the model with its optimizer in
`WORKDIR/checkpoints/step-N` (keras_memory.training.save_checkpoint) and
every replica's memory gathered into one global-batch state,
`WORKDIR/memory/step-N.npz`. A rerun resumes from the newest checkpoint, on
any number of replicas, with the losses of a run that never stopped.

    # 4 CPU devices on one host (laptop, CI)
    KERAS_BACKEND=tensorflow python recipes/distributed_tf.py --cpu-devices 4 --kind memorizing
    # every GPU of the host (MirroredStrategy)
    KERAS_BACKEND=tensorflow python recipes/distributed_tf.py --kind xl --batch-size 32
    # a TPU VM (`--tpu local`) or a TPU node by name
    KERAS_BACKEND=tensorflow python recipes/distributed_tf.py --tpu local --kind melodi

ScaNN (`--retrieval scann`) runs on the host through `tf.numpy_function`, and
`--memory-placement host` keeps the memory itself in host RAM, one per global
row (replica r's rows r*b ...), saved with the checkpoint's model.
Under MirroredStrategy each replica's step calls it from the host with its
own rows; TPU cores cannot make host calls, so under TPUStrategy the recipe
uses exact on-device retrieval instead, with a warning.
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
    parser.add_argument(
        "--retrieval",
        default=None,
        help="memorizing: exact|approx|scann (default: exact on the device, scann on the host)",
    )
    parser.add_argument(
        "--memory-placement",
        default="device",
        choices=("device", "host"),
        help="memorizing: the memory in device memory, or in host RAM (one per global row)",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="global batch")
    parser.add_argument("--segment-length", type=int, default=None)
    parser.add_argument("--steps", type=int, default=200, help="total steps of the run")
    parser.add_argument("--checkpoint-every", type=int, default=50)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--cpu-devices", type=int, default=0, help="split the CPU into N devices")
    parser.add_argument("--tpu", default=None, help="'local' on a TPU VM, or a TPU name")
    parser.add_argument("--data", default=None, help="text folder; default: Python sources")
    parser.add_argument("--max-documents", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default="workdir/distributed_tf")
    return parser.parse_args(argv)


def make_strategy(tf, args):
    """TPUStrategy when `--tpu` is given, else MirroredStrategy over GPUs or CPUs."""
    if args.tpu is not None:
        # Only on request: looking for a TPU elsewhere queries a cloud
        # metadata server, which hangs on an offline machine.
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=args.tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([device.name for device in devices])


def main(argv=None):
    args = parse_args(argv)
    backend = os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if backend != "tensorflow":
        sys.exit(
            f"error: tf.distribute needs KERAS_BACKEND=tensorflow (got {backend}); "
            "for JAX use recipes/distributed_jax.py"
        )
    import numpy as np
    import tensorflow as tf

    if args.cpu_devices:
        # Must come before TensorFlow creates its devices (the first op).
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * args.cpu_devices
        )
    import keras

    from keras_memory.data import SegmentStream, StepWindow, python_source_corpus, text_files_corpus
    from keras_memory.memories import get_kind
    from keras_memory.models import PRESETS, MemoryLM
    from keras_memory.training import (
        load_checkpoint,
        load_memory_state,
        save_checkpoint,
        save_memory_state,
        workdir_lock,
    )

    workdir_lock(args.workdir)  # one run per workdir
    strategy = make_strategy(tf, args)
    replicas = strategy.num_replicas_in_sync
    if args.batch_size % replicas:
        sys.exit(
            f"error: --batch-size {args.batch_size} must be a multiple of the number of "
            f"replicas ({replicas})"
        )
    rows = args.batch_size // replicas
    if args.memory_placement == "host" and isinstance(strategy, tf.distribute.TPUStrategy):
        sys.exit(
            "error: --memory-placement host needs host calls, which TPU cores cannot make; "
            "use --memory-placement device"
        )
    if args.retrieval == "scann" and isinstance(strategy, tf.distribute.TPUStrategy):
        warnings.warn(
            "ScaNN is a host call and TPU cores cannot make host calls: using exact "
            "on-device retrieval instead.",
            stacklevel=1,
        )
        args.retrieval = "exact"
    keras.utils.set_random_seed(args.seed)
    segment_length = args.segment_length or PRESETS[args.preset]["segment_length"]

    with strategy.scope():
        model, progress = load_checkpoint(args.workdir)
        first_step = progress["step"] if progress else 0
        if model is None:
            options = get_kind(args.kind).own_options(
                memory_size=args.memory_size,
                retrieval=args.retrieval,
                memory_placement=args.memory_placement,
            )
            model = MemoryLM.from_preset(args.preset, kind=args.kind, **options)
            model.compile(optimizer=keras.optimizers.AdamW(args.learning_rate))
            model({"tokens": np.zeros((rows, segment_length), "int32")})  # creates the weights
            model.optimizer.build(model.trainable_variables)
    if model.stateful:
        sys.exit("error: this recipe carries the memory itself; use a functional model")

    if first_step:
        memory = load_memory_state(os.path.join(args.workdir, "memory", f"step-{first_step}.npz"))
    else:
        memory = [
            {k: np.asarray(v) for k, v in b.items()} for b in model.initial_state(rows * replicas)
        ]
    state = distribute_rows(strategy, memory, rows)

    if args.data:
        documents = text_files_corpus(args.data)
    else:
        documents = python_source_corpus("train", max_documents=args.max_documents)
    stream = SegmentStream(documents.tokenize(), args.batch_size, segment_length, seed=args.seed)
    window = StepWindow(stream, first_step=first_step, num_steps=max(args.steps - first_step, 0))
    pad = model.pad_token_id
    optimizer = model.optimizer

    def replica_step(inputs, targets, state, count):
        with tf.GradientTape() as tape:
            logits, new_state = model(inputs, state=state, training=True)
            keep = tf.not_equal(targets, pad)
            losses = keras.losses.sparse_categorical_crossentropy(
                tf.where(keep, targets, 0), logits, from_logits=True
            )
            loss = tf.reduce_sum(tf.where(keep, losses, 0.0)) / count
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss, new_state

    @tf.function
    def train_step(inputs, targets, state, count):
        loss, new_state = strategy.run(replica_step, args=(inputs, targets, state, count))
        return strategy.reduce("SUM", loss, axis=None), new_state

    for index in range(len(window)):
        inputs, targets = window[index]
        count = tf.constant(max(int(np.sum(targets != pad)), 1), tf.float32)
        loss, state = train_step(
            distribute_rows(strategy, inputs, rows),
            distribute_rows(strategy, targets, rows),
            state,
            count,
        )
        step = first_step + index + 1
        print(json.dumps({"step": step, "loss": float(loss)}), flush=True)
        if step == args.steps or (args.checkpoint_every and step % args.checkpoint_every == 0):
            # The memory first: a checkpoint is only found once its memory exists.
            folder = save_global_memory(strategy, state, args.workdir, step, save_memory_state)
            save_checkpoint(model, args.workdir, step)
            prune_memory(args.workdir, folder)
    shapes = [
        {name: list(value.shape) for name, value in block.items()}
        for block in strategy.experimental_local_results(state)[0]
    ]
    print(
        json.dumps(
            {
                "strategy": type(strategy).__name__,
                "replicas": replicas,
                "resumed_from": first_step,
                "replica_state_shapes": shapes,
            }
        )
    )


def distribute_rows(strategy, value, rows):
    """Replica r gets rows [r*rows, (r+1)*rows) of every batch-first array in `value`;
    rank-0 arrays (the kNN ring pointer, shared by every row) go to every replica."""
    import numpy as np
    import tensorflow as tf

    def part(context):
        start = context.replica_id_in_sync_group * rows
        return tf.nest.map_structure(
            lambda array: tf.constant(
                array if np.ndim(array) == 0 else array[start : start + rows]
            ),
            value,
        )

    return strategy.experimental_distribute_values_from_function(part)


def save_global_memory(strategy, state, workdir, step, save_memory_state):
    """Writes every replica's rows as one global-batch state, `memory/step-N.npz`,
    and deletes those of checkpoints that are gone."""
    import numpy as np
    import tensorflow as tf

    parts = strategy.experimental_local_results(state)
    merged = tf.nest.map_structure(
        lambda *values: (
            values[0].numpy()
            if values[0].shape.rank == 0
            else np.concatenate([value.numpy() for value in values], axis=0)
        ),
        *parts,
    )
    folder = os.path.join(workdir, "memory")
    save_memory_state(merged, os.path.join(folder, f"step-{step}.npz"))
    return folder


def prune_memory(workdir, folder):
    """Keeps the memory files of the checkpoints that `save_checkpoint` kept."""
    kept = {
        int(name.split("-")[1])
        for name in os.listdir(os.path.join(workdir, "checkpoints"))
        if name.startswith("step-")
    }
    for name in os.listdir(folder):
        if name.startswith("step-") and name.endswith(".npz"):
            if int(name[len("step-") : -len(".npz")]) not in kept:
                os.remove(os.path.join(folder, name))


if __name__ == "__main__":
    main()
