"""A functional model's forward pass, compiled once by the backend, for decoding."""

import keras
from keras import ops


def compiled_model_call(model, jit_compile=True):
    """Returns `call(tokens, reset, state, position)`: the model's compiled forward pass.

    What token-by-token generation runs for every token, so it is compiled
    the way each backend compiles a step: `jax.jit` over Keras's stateless
    call on JAX (the weights are arguments, so a model trained further is
    read anew and nothing recompiles), `tf.function` on TensorFlow (with
    XLA when `jit_compile`), and on torch an eager call without autograd
    (Keras's torch backend compiles nothing by default). One trace per
    token-array shape: a decoder calls it on one window or one segment.

    Args:
        model: a built functional (`stateful=False`) `SegmentLM`.
        jit_compile: bool. On TensorFlow, compile with XLA. Defaults to True.

    Returns:
        A function of `tokens` (int32 `(batch, length)`), `reset` (bool
        `(batch,)`), `state` (the model's state list) and `position` (int32
        scalar) returning `(logits, new_state)`, with the float32 logits
        `(batch, vocab_size)` of the token at `position` only: a step
        copies one row of logits back to the host, not the window's.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        return _jax_call(model)
    if backend == "tensorflow":
        return _tensorflow_call(model, jit_compile)
    return _torch_call(model)


def _logits_at(logits, position):
    # A dynamic slice: one trace serves every position of the window.
    row = ops.take(logits, ops.reshape(position, (1,)), axis=1)
    return ops.cast(row[:, 0], "float32")


def _jax_call(model):
    import jax

    def forward(trainable, non_trainable, tokens, reset, state, position):
        (logits, new_state), _ = model.stateless_call(
            trainable, non_trainable, {"tokens": tokens, "reset": reset}, state=state
        )
        return _logits_at(logits, position), new_state

    forward = jax.jit(forward)

    def call(tokens, reset, state, position):
        trainable = [variable.value for variable in model.trainable_variables]
        non_trainable = [variable.value for variable in model.non_trainable_variables]
        return forward(trainable, non_trainable, tokens, reset, state, position)

    return call


def _tensorflow_call(model, jit_compile):
    import tensorflow as tf

    # One trace per token-array shape: the layers need a static segment length.
    @tf.function(jit_compile=jit_compile)
    def forward(tokens, reset, state, position):
        logits, new_state = model({"tokens": tokens, "reset": reset}, state=state)
        return _logits_at(logits, position), new_state

    return forward


def _torch_call(model):
    import torch

    def call(tokens, reset, state, position):
        with torch.no_grad():
            logits, new_state = model({"tokens": tokens, "reset": reset}, state=state)
            return _logits_at(logits, ops.convert_to_tensor(position)), new_state

    return call


def compiled_model_method(model, name, jit_compile=True, buffers_argument=None):
    """Returns the model's method `name` (e.g. `decode_step`), compiled like `compiled_model_call`.

    On JAX the weights are arguments of the jitted function and the step
    runs under a `keras.StatelessScope` mapping the model's variables to
    them (how keras-hub's samplers run a model inside a compiled loop).

    Args:
        model: a built functional model (`MemoryLM`).
        name: str. The method: `"decode_step"` or `"next_window_buffers"`.
        buffers_argument: int or None. The position of an argument the
            method returns a new version of (the step buffers): JAX then
            reuses its memory for the result instead of copying it every
            token. The caller must not read the argument afterwards.
        jit_compile: bool. On TensorFlow, compile with XLA. Defaults to True.

    Returns:
        A function with the method's arguments and results.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        def forward(trainable, non_trainable, *args):
            mapping = list(zip(model.trainable_variables, trainable))
            mapping += list(zip(model.non_trainable_variables, non_trainable))
            with keras.StatelessScope(state_mapping=mapping):
                return getattr(model, name)(*args)

        donated = () if buffers_argument is None else (2 + buffers_argument,)
        forward = jax.jit(forward, donate_argnums=donated)

        def step(*args):
            trainable = [variable.value for variable in model.trainable_variables]
            non_trainable = [variable.value for variable in model.non_trainable_variables]
            return forward(trainable, non_trainable, *args)

        return step
    if backend == "tensorflow":
        import tensorflow as tf

        # Traced on first use: a model without one-token steps never calls it.
        return tf.function(lambda *args: getattr(model, name)(*args), jit_compile=jit_compile)
    import torch

    def step(*args):
        with torch.no_grad():
            return getattr(model, name)(*args)

    return step
