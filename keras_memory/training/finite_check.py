"""Detecting NaN and Inf in weights, memory state, inputs and the loss.

A NaN that enters a memory (one bad segment, an overflow in bf16) is carried
to every later segment of the document and, through the loss, into the
weights. `check_finite` names the first tensor that holds one; the
`FiniteCheck` callback runs it during `model.fit` and stops training at the
step where it appears.
"""

import keras
import numpy as np
from keras import ops

from keras_memory.layers.memory_layer import memory_layers
from keras_memory.ops.checks import check_bool, check_int

# How many further non-finite tensors a message lists after the first.
_MAX_LISTED = 5


class NonFiniteError(ValueError):
    """A weight, memory-state variable, input or loss holds NaN or Inf."""


def memory_state_variables(model_or_layer):
    """Returns `{path: variable}` of every memory-state variable under a layer or model.

    These are the non-trainable variables in which stateful `MemoryLayer`s
    keep their memory (`MemoryLayer.state_variables()`), in the order of
    `keras_memory.layers.memory_layer.memory_layers`.

    Args:
        model_or_layer: a `keras.layers.Layer` or `keras.Model`.

    Returns:
        A dict from variable path (e.g. `"xl_lm/attention_0/state_keys"`) to
        the variable; empty for a functional (non-stateful) model.

    Example:
    ```python
    model = MemoryLM.from_preset("tiny", kind="xl", stateful=True)
    model.build({"tokens": (2, 128), "reset": (2,)})
    sorted(memory_state_variables(model))[:1]  # ['xl_lm/attention_0/state_keys']
    ```
    """
    variables = {}
    for layer in memory_layers(model_or_layer):
        for variable in layer.state_variables().values():
            variables[variable.path] = variable
    return variables


def check_finite(model_or_layer_or_state=None, inputs=None):
    """Raises `NonFiniteError` (a ValueError) naming the first tensor with NaN or Inf.

    Checks, in this order, `inputs`, then the memory-state variables and
    then the other weights of a layer or model (or the tensors of a state
    dict / list of dicts, as the functional form returns it). Integer and
    bool tensors are skipped. The device work is one reduction per tensor
    and a single transfer of the flags to the host; counts are computed only
    for the tensors that fail. Call it outside `jit`, e.g. between steps or
    from a callback (`FiniteCheck`).

    Args:
        model_or_layer_or_state: a `keras.layers.Layer` / `keras.Model`, a
            state dict of tensors, a list of such dicts, or None (check
            `inputs` only).
        inputs: optional array, tensor or nested dict/list of them (e.g. the
            `{"tokens", "reset"}` batch, or the float `x` given to a layer).

    Returns:
        None when every checked value is finite.

    Raises:
        NonFiniteError: naming the first non-finite tensor (an input, a
            memory state variable or a weight, by path) with its counts of
            NaN and Inf, and listing a few further ones.

    Example:
    ```python
    logits, state = model({"tokens": tokens, "reset": reset}, state=state)
    check_finite(state)                 # the functional memory
    check_finite(model, inputs=batch)   # weights, stateful memory and the batch
    ```
    """
    named = _named_inputs(inputs) if inputs is not None else []
    target = model_or_layer_or_state
    if isinstance(target, keras.layers.Layer):
        state = memory_state_variables(target)
        state_ids = {id(v) for v in state.values()}
        named += [(f"memory state variable `{path}`", v) for path, v in state.items()]
        named += [(f"weight `{v.path}`", v) for v in target.weights if id(v) not in state_ids]
    elif target is not None:
        named += [(f"state{path}", value) for path, value in _flatten(target, "")]
    bad = _non_finite(named)
    if bad:
        raise NonFiniteError(_describe_non_finite(bad))


class FiniteCheck(keras.callbacks.Callback):
    """Stops `model.fit` with a clear error when the loss or the memory turns NaN/Inf.

    After every `every` training batches the callback checks the batch's
    loss (as Keras logs it) and every memory-state variable of the model
    (`memory_state_variables`), and with `check_weights=True` every weight
    too. On a non-finite value it sets `model.stop_training` and raises
    `NonFiniteError` naming the step and the variables, so training ends
    where the NaN appeared instead of carrying it through the memory for the
    rest of the run. Each check costs one transfer of a few flags from the
    device.

    Args:
        every: int. Check after every `every`-th training batch. Defaults
            to 1 (every step).
        check_weights: bool. Also check the model's weights. Defaults to
            False (the loss turns NaN as soon as a weight does).

    Example:
    ```python
    model = MemoryLM.from_preset("tiny", kind="xl", stateful=True)
    model.compile()
    model.fit(stream, epochs=1, callbacks=[FiniteCheck(every=10)])
    ```
    """

    def __init__(self, every=1, check_weights=False):
        super().__init__()
        self.every = check_int("every", every)
        self.check_weights = check_bool("check_weights", check_weights)
        self._steps = 0

    def on_train_begin(self, logs=None):
        self._steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self._steps += 1
        if self._steps % self.every:
            return
        named = []
        loss = (logs or {}).get("loss")
        if loss is not None:
            named.append(("the loss", loss))
        state = memory_state_variables(self.model)
        named += [(f"memory state variable `{path}`", v) for path, v in state.items()]
        if self.check_weights:
            state_ids = {id(v) for v in state.values()}
            named += [
                (f"weight `{v.path}`", v) for v in self.model.weights if id(v) not in state_ids
            ]
        bad = _non_finite(named)
        if bad:
            self.model.stop_training = True
            raise NonFiniteError(
                f"FiniteCheck stopped training after step {self._steps} (batch {batch} of "
                f"the epoch): {_describe_non_finite(bad)}"
            )


def _describe_non_finite(bad):
    """The message for a list of `(name, numpy array)` that hold NaN or Inf."""
    name, value = bad[0]
    message = f"non-finite values (NaN or Inf) in {name}: {_counts(value)}."
    if len(bad) > 1:
        more = ", ".join(n for n, _ in bad[1 : 1 + _MAX_LISTED])
        extra = len(bad) - 1 - _MAX_LISTED
        message += f" Also non-finite: {more}" + (f" and {extra} more." if extra > 0 else ".")
    return message[0].upper() + message[1:]


def _counts(value):
    nan = int(np.isnan(value).sum())
    inf = int(np.isinf(value).sum())
    return f"{nan} NaN and {inf} Inf of {value.size} values"


def _is_float(value):
    return keras.backend.is_float_dtype(keras.backend.standardize_dtype(value.dtype))


def _non_finite(named):
    """The `(name, numpy value)` pairs of `named` that hold NaN or Inf, in order.

    Numpy values are checked on the host; tensors and variables on their
    device, all flags fetched in one transfer.
    """
    checked, device = [], []
    for name, value in named:
        if isinstance(value, (float, np.ndarray, np.generic)):
            value = np.asarray(value)
        if not _is_float(value):
            continue
        if isinstance(value, np.ndarray):
            checked.append((name, value, bool(np.all(np.isfinite(value)))))
        else:
            checked.append((name, value, len(device)))
            device.append(ops.all(ops.isfinite(ops.convert_to_tensor(value))))
    flags = ops.convert_to_numpy(ops.stack(device)) if device else []
    return [
        (name, np.asarray(ops.convert_to_numpy(value), dtype=np.float64))
        for name, value, flag in checked
        if not (flag if isinstance(flag, bool) else flags[flag])
    ]


def _named_inputs(inputs):
    flat = _flatten(inputs, "")
    return [(f"input `inputs{path}`" if path else "input `inputs`", value) for path, value in flat]


def _flatten(structure, path):
    """`(path, leaf)` pairs of a nest of dicts, lists and tuples, e.g. `("[0]['keys']", t)`."""
    if isinstance(structure, dict):
        items = [(f"[{k!r}]", v) for k, v in structure.items()]
    elif isinstance(structure, (list, tuple)):
        items = [(f"[{i}]", v) for i, v in enumerate(structure)]
    else:
        return [(path, structure)] if hasattr(structure, "dtype") else []
    return [pair for key, value in items for pair in _flatten(value, path + key)]
