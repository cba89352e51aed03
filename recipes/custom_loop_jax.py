"""A jitted JAX training loop that carries the memory state functionally.

The functional form of the memory contract: `logits, state = model(inputs,
state=state)`. The state is a pytree, so it goes in and out of `jax.jit` like
any other value; gradients stop at the segment boundary (the layers apply
`stop_gradient` when they write the state).

    KERAS_BACKEND=jax python recipes/custom_loop_jax.py --steps 100
"""

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import keras  # noqa: E402

from keras_memory.data import SegmentStream, python_source_corpus  # noqa: E402
from keras_memory.models import MemoryLM  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()
    if keras.backend.backend() != "jax":
        raise SystemExit("This recipe is for KERAS_BACKEND=jax.")

    corpus = python_source_corpus("train", max_documents=100)
    stream = SegmentStream(corpus.tokenize(), args.batch_size, segment_length=128, seed=0)
    model = MemoryLM.from_preset("tiny", kind="xl")  # functional: no state variables
    optimizer = keras.optimizers.AdamW(3e-3)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)
    inputs, _ = stream[0]
    model(inputs)
    optimizer.build(model.trainable_variables)

    def compute_loss(trainable, non_trainable, inputs, targets, memory):
        (logits, new_memory), non_trainable = model.stateless_call(
            trainable, non_trainable, inputs, state=memory, training=True
        )
        return loss_fn(targets, logits), (new_memory, non_trainable)

    @jax.jit
    def train_step(variables, inputs, targets, memory):
        trainable, non_trainable, optimizer_vars = variables
        (loss, (memory, non_trainable)), grads = jax.value_and_grad(compute_loss, has_aux=True)(
            trainable, non_trainable, inputs, targets, memory
        )
        trainable, optimizer_vars = optimizer.stateless_apply(optimizer_vars, grads, trainable)
        return loss, (trainable, non_trainable, optimizer_vars), memory

    variables = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in optimizer.variables],
    )
    memory = model.initial_state(args.batch_size)
    for step in range(args.steps):
        inputs, targets = stream[step % len(stream)]
        loss, variables, memory = train_step(variables, inputs, targets, memory)
        if step % 20 == 0 or step == args.steps - 1:
            print(f"step {step}: loss {float(loss):.3f}")
    for variable, value in zip(model.trainable_variables, variables[0], strict=True):
        variable.assign(value)


if __name__ == "__main__":
    main()
