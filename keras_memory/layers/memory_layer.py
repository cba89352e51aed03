"""The base class of every layer that carries memory across segments, and its helpers."""

import keras
from keras import ops

from keras_memory.layers.call_arguments import convert_call_arguments
from keras_memory.ops.checks import (
    check_bool,
    check_float_input,
    check_not_empty,
    check_reset,
    check_shape,
    dtype_name,
    require_tensor,
    same_size,
    static_shape,
)


class MemoryLayer(keras.layers.Layer):
    """Base layer implementing the memory-state contract.

    A memory layer processes one segment of a long document and carries a
    state (a dict of tensors) to the next segment. It has two forms:

    - functional (`stateful=False`): `y, new_state = layer(x, state=state,
      reset=reset)`. `state=None` starts from `initial_state`. The state is a
      plain dict, so it flows through `jit`, `scan` and custom loops.
    - stateful (`stateful=True`, for `model.fit`): `y = layer(x,
      reset=reset)`; the state lives in non-trainable variables sized for the
      batch seen at build time and is assigned at the end of each call.
      `reset_state()` clears every row.

    `reset[b]` True marks the first segment of a document in batch row `b`:
    that row's state is re-initialised inside the graph before it is used.
    New states are written through `stop_gradient`: gradients never cross a
    segment boundary (truncated backpropagation, as in the papers).

    Subclasses implement `state_shapes(batch_size)` and `call_with_state(x,
    state, reset, training, **call_options)` and call
    `build_state(batch_size)` from `build()`. Keyword arguments of `call`
    beyond these (such as `recurrent_kv` for a layer that reads a recurrent
    state) reach `call_with_state` unchanged.

    `functional=True` in a call treats any layer, stateful or not, as a
    step of a longer computation: `state` in (None: the initial state),
    `(y, new_state)` out with its gradient kept, no variables read or
    written. A model that runs its stack window by window (Block-Recurrent
    feedback) uses it, so gradients flow from window to window inside a
    segment as they do inside one layer call.

    Args:
        stateful: bool. Keep the state in variables (see above).
        **kwargs: base layer keyword arguments such as `name` and `dtype`.
    """

    def __init__(self, stateful=False, **kwargs):
        super().__init__(**kwargs)
        self.stateful = check_bool("stateful", stateful)
        self._state_variables = None
        self._state_batch_size = None
        # Keras would cast every floating argument, the state included, to
        # the compute dtype: under a mixed policy a float32 memory would come
        # back bfloat16 from the first functional call on (rounded, and a new
        # trace). `__call__` converts the arguments itself, the state apart.
        self._convert_input_args = False

    def state_shapes(self, batch_size):
        """Returns `{name: (shape, dtype)}` of the state for `batch_size` rows."""
        return {}

    def initial_state(self, batch_size):
        """Returns the state a document starts from: zeros of `state_shapes`."""
        return {
            name: ops.zeros(shape, dtype=dtype)
            for name, (shape, dtype) in self.state_shapes(batch_size).items()
        }

    def build_state(self, batch_size):
        """Creates the state variables of a stateful layer."""
        if not self.stateful:
            return
        if batch_size is None:
            raise ValueError(
                f"Layer '{self.name}' is stateful and needs a static batch size; "
                "build it on inputs with a known batch dimension (like "
                "`keras.layers.RNN(stateful=True)`)."
            )
        self._state_batch_size = int(batch_size)
        self._state_variables = {
            name: self.add_weight(
                name=f"state_{name}",
                shape=shape,
                dtype=dtype,
                initializer="zeros",
                trainable=False,
                autocast=False,
            )
            for name, (shape, dtype) in self.state_shapes(batch_size).items()
        }

    def reset_state(self):
        """Clears every row of a stateful layer's state."""
        if not self.stateful:
            raise ValueError(f"Layer '{self.name}' is not stateful.")
        for variable in (self._state_variables or {}).values():
            variable.assign(ops.zeros(variable.shape, dtype=variable.dtype))

    def state_variables(self):
        """Returns `{name: variable}`: the variables a stateful layer keeps its state in.

        Empty for a functional (`stateful=False`) layer and before `build`.
        The variables are non-trainable and sized for the batch the layer was
        built with; `read_state()` returns their values as tensors.
        """
        return dict(self._state_variables or {})

    def read_state(self):
        """Returns a stateful layer's current state as a dict of tensors."""
        return {
            name: ops.convert_to_tensor(variable)
            for name, variable in (self._state_variables or {}).items()
        }

    def write_state(self, state):
        """Assigns a state dict (as returned by a functional call) to a stateful layer.

        The whole dict is checked (keys, shapes, dtypes) before any variable
        is written, so a bad state leaves the layer's memory as it was.
        """
        if not self.stateful:
            raise ValueError(f"Layer '{self.name}' is not stateful.")
        if self._state_variables is None:
            raise ValueError(f"Layer '{self.name}' is not built: it has no state to write yet.")
        self.check_state(state, self._state_batch_size)
        for name, value in state.items():
            variable = self._state_variables[name]
            variable.assign(ops.cast(value, variable.dtype))

    def decoding_window_length(self):
        """The fewest tokens a call may read for generation to stay exact; None: a whole segment.

        Token-by-token generation re-reads only the window that holds the
        newest token. A layer that returns `W` promises: reading a segment
        as consecutive calls of `W` tokens, the state carried from call to
        call except the `segment_state_names` entries (held at their values
        from the segment's start), gives the outputs of one call on the
        whole segment. None (the default) promises nothing: a decoder then
        re-reads the whole segment for every token.
        """
        return None

    def segment_state_names(self):
        """The state entries this layer updates once per segment, at its end.

        Calls on the windows of one segment must read them as they were at
        the segment's start (a kNN memory is written after the segment that
        searched it). A decoder reading window by window holds them and
        re-reads the segment once it is complete. Defaults to none.
        """
        return ()

    def step_buffers(self, state, batch_size, segment_length):
        """What a one-token decoding step carries (a dict of `(batch, 2W, ...)` tensors).

        Layers that can compute one token's output from the keys and values
        of `[previous window, current window]` (`decode_step`) return them,
        the previous window taken from `state`; at every window's end a
        decoder drops the first half and appends an empty window (layers
        with other buffers override `next_window_buffers`). `segment_length`
        is the decoder's. None (the default): the layer has no one-token
        step, and a decoder re-reads windows instead.
        """
        return None

    def decode_step(self, x, position, buffers, state, previous_valid):
        """One token's output and the new buffers; see `step_buffers`."""
        raise NotImplementedError(f"Layer '{self.name}' has no one-token decoding step.")

    def next_window_buffers(self, buffers, state, previous_valid):
        """The step buffers of the next window, once the current one is complete.

        By default the current window becomes the previous one and an empty
        window follows. A layer whose state changes at a window's end
        updates it here. `previous_valid` is the finished window's (see
        `decode_step`).
        """
        current = {name: value[:, value.shape[1] // 2 :] for name, value in buffers.items()}
        return {
            name: ops.concatenate([v, ops.zeros_like(v)], axis=1) for name, v in current.items()
        }

    def call(self, x, state=None, reset=None, training=None, functional=False, **call_options):
        # Every check reads static shapes and dtypes only and runs before any
        # state is read or written: a bad call leaves the memory untouched.
        x = self._check_input(x, functional)
        static_batch = x.shape[0]
        batch_size = static_batch if static_batch is not None else ops.shape(x)[0]
        if self.stateful and not functional:
            if state is not None:
                raise ValueError(
                    f"Layer '{self.name}' is stateful: it keeps its own state; do not pass `state`."
                )
        elif state is not None:
            self.check_state(state, batch_size)
            state = {
                name: ops.cast(state[name], dtype)
                for name, (_, dtype) in self.state_shapes(batch_size).items()
            }
        reset = check_reset(reset, batch_size, prefix=f"Layer '{self.name}': ")
        if self.stateful and not functional:
            state = self.read_state()
        elif state is None:
            state = self.initial_state(batch_size)
        y, new_state = self.call_with_state(x, state, reset, training, **call_options)
        if functional:
            return y, new_state
        new_state = {name: ops.stop_gradient(value) for name, value in new_state.items()}
        if not self.stateful:
            return y, new_state
        self.write_state(new_state)
        return y

    def call_with_state(self, x, state, reset, training):
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        args, kwargs = convert_call_arguments(self, args, kwargs)
        return super().__call__(*args, **kwargs)

    def input_width(self):
        """The feature width of `x` the layer was built for; None before `build`."""
        return getattr(self, "hidden_dim", None)

    def check_segment_length(self, length):
        """Raises ValueError unless the layer can read a segment of `length` tokens.

        The base layer takes any length; layers that split a segment into
        windows or write it into a ring buffer override this.
        """

    def check_input_shape(self, shape, functional=False):
        """Raises ValueError unless `x` of static `shape` suits this layer.

        Checks the rank, the feature width the layer was built for, that
        there is at least one row and one token (`check_not_empty`), the
        segment length (`check_segment_length`) and, for a stateful call,
        the batch size of the state variables. Sizes that are not static
        pass. A model calls it for every block before running any, so a
        segment that one block cannot read fails before another block has
        written its memory.

        Args:
            shape: tuple. The static shape of `x`, `(batch, segment, features)`.
            functional: bool. The call's `functional` flag (a functional
                call of a stateful layer takes any batch size).
        """
        shape = static_shape(shape)
        prefix = f"Layer '{self.name}': "
        check_shape("x", shape, ("batch", "segment", self.input_width() or "features"), prefix)
        # Before the segment rules: a ring buffer's `memory_size % length` divides by it.
        check_not_empty("x", shape, prefix)
        if shape[1] is not None:
            self.check_segment_length(shape[1])
        if (
            self.stateful
            and not functional
            and shape[0] is not None
            and self._state_batch_size is not None
            and shape[0] != self._state_batch_size
        ):
            raise ValueError(
                f"Layer '{self.name}' is stateful with batch size "
                f"{self._state_batch_size}; got `x` with batch size {shape[0]}."
            )

    def check_state(self, state, batch_size):
        """Raises ValueError unless `state` is this layer's state for `batch_size` rows.

        Checks the keys, that every value is a tensor of the expected static
        shape and of a float (float entries) or integer/bool (int entries)
        dtype.

        Args:
            state: the state dict to check.
            batch_size: int, scalar tensor or None (not checked).
        """
        expected = self.state_shapes(batch_size)
        if not isinstance(state, dict) or set(state) != set(expected):
            raise ValueError(
                f"Layer '{self.name}' expects `state` to be a dict with keys "
                f"{sorted(expected)}; got {type(state).__name__} "
                f"{sorted(state) if isinstance(state, dict) else ''}."
            )
        prefix = f"Layer '{self.name}': "
        for name, (shape, dtype) in expected.items():
            label = f"state['{name}']"
            value = state[name]
            if not (hasattr(value, "shape") and hasattr(value, "dtype")):
                raise TypeError(f"{prefix}`{label}` must be a tensor; got {type(value).__name__}.")
            got = static_shape(value)
            want = tuple(d if isinstance(d, int) else None for d in shape)
            if len(got) != len(want) or not all(map(same_size, got, want)):
                raise ValueError(f"{prefix}`{label}` must have shape {tuple(shape)}; got {got}.")
            got_dtype = dtype_name(value)
            if keras.backend.is_float_dtype(dtype) != keras.backend.is_float_dtype(got_dtype):
                raise ValueError(f"{prefix}`{label}` must have dtype {dtype}; got {got_dtype}.")

    def _check_build_shape(self, input_shape):
        prefix = f"Layer '{self.name}': "
        check_shape("x", input_shape, ("batch", "segment", "features"), prefix)
        # Keras builds before `call` checks: a stateful layer would size its memory for 0 rows.
        check_not_empty("x", input_shape, prefix)

    def _check_input(self, x, functional=False):
        prefix = f"Layer '{self.name}': "
        x = require_tensor("x", x, prefix)
        check_float_input("x", x, prefix)
        self.check_input_shape(x.shape, functional)
        return x

    def get_config(self):
        config = super().get_config()
        config["stateful"] = self.stateful
        return config


def zero_rows(tensor, keep):
    """Zeroes the batch rows of `tensor` where `keep` is False.

    How a state entry forgets a document: a row that starts a new document
    (`reset`) reads zeros, the other rows their carried values.

    Args:
        tensor: tensor `(batch, ...)`.
        keep: bool tensor `(batch,)`.

    Returns:
        A tensor like `tensor`.
    """
    keep = ops.reshape(keep, (-1,) + (1,) * (len(tensor.shape) - 1))
    return ops.where(keep, tensor, ops.zeros_like(tensor))


def memory_layers(model_or_layer):
    """Returns every `MemoryLayer` in a model or layer, itself included, each once.

    Walks public routes only: a `keras.Model`'s `layers`, and for any other
    layer its public attributes that hold a layer or a list, tuple or dict of
    layers (`TransformerBlock.attention`, `MemoryLM.blocks`, ...). Layers
    come depth first: a model's in its `layers` order, a layer's sublayers
    by attribute name; a `TransformerBlock` comes before its attention
    layer (the block's state is its attention's).

    Args:
        model_or_layer: a `keras.layers.Layer` or `keras.Model`.

    Returns:
        A list of `MemoryLayer`s.

    Example:
    ```python
    model = keras_memory.models.MemoryLM.from_preset("tiny", kind="xl")
    [layer.name for layer in memory_layers(model)][:2]  # ['block_0', 'attention_0']
    ```
    """
    found, seen = [], set()

    def visit(layer):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        if isinstance(layer, MemoryLayer):
            found.append(layer)
        for child in _sublayers(layer):
            visit(child)

    visit(model_or_layer)
    return found


def _sublayers(layer):
    """The layers directly under `layer`, found through its public interface."""
    if isinstance(layer, keras.Model):
        return list(layer.layers)
    children = []
    # `dir`, not `vars`: on torch a sublayer is kept in the module's own
    # registry, not in `__dict__`. Instance attributes only: the class's
    # properties and methods hold no sublayer (and some raise when unbuilt).
    for name in dir(layer):
        if name.startswith("_") or hasattr(type(layer), name):
            continue
        value = getattr(layer, name, None)
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, (list, tuple)):
            children.extend(v for v in value if isinstance(v, keras.layers.Layer))
        elif isinstance(value, keras.layers.Layer):
            children.append(value)
    return children
