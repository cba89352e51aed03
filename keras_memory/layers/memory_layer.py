"""The base class of every layer that carries memory across segments."""

import keras
from keras import ops


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
        self.stateful = stateful
        self._state_variables = None
        self._state_batch_size = None

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

    def read_state(self):
        """Returns a stateful layer's current state as a dict of tensors."""
        return {
            name: ops.convert_to_tensor(variable)
            for name, variable in (self._state_variables or {}).items()
        }

    def write_state(self, state):
        """Assigns a state dict (as returned by a functional call) to a stateful layer."""
        if not self.stateful:
            raise ValueError(f"Layer '{self.name}' is not stateful.")
        for name, value in state.items():
            variable = self._state_variables[name]
            variable.assign(ops.cast(value, variable.dtype))

    def call(self, x, state=None, reset=None, training=None, functional=False, **call_options):
        x = self._check_input(x)
        static_batch = x.shape[0]
        batch_size = static_batch if static_batch is not None else ops.shape(x)[0]
        if self.stateful and not functional:
            if state is not None:
                raise ValueError(
                    f"Layer '{self.name}' is stateful: it keeps its own state; do not pass `state`."
                )
            if static_batch is not None and static_batch != self._state_batch_size:
                raise ValueError(
                    f"Layer '{self.name}' is stateful with batch size "
                    f"{self._state_batch_size}; got inputs with batch size "
                    f"{batch_size}."
                )
            state = self.read_state()
        elif state is None:
            state = self.initial_state(batch_size)
        else:
            self._check_state(state, batch_size)
        reset = self._check_reset(reset, batch_size)
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

    def _check_input(self, x):
        if len(x.shape) != 3:
            raise ValueError(
                f"Layer '{self.name}' expects inputs of shape (batch, sequence, "
                f"features); got rank {len(x.shape)} with shape {tuple(x.shape)}."
            )
        return x

    def _check_reset(self, reset, batch_size):
        if reset is None:
            return ops.zeros((batch_size,), dtype="bool")
        if len(reset.shape) != 1 or not _same_size(reset.shape[0], batch_size):
            raise ValueError(
                f"Layer '{self.name}' expects `reset` of shape (batch,) = "
                f"({batch_size},); got shape {tuple(reset.shape)}."
            )
        return ops.cast(reset, "bool")

    def _check_state(self, state, batch_size):
        expected = self.state_shapes(batch_size)
        if not isinstance(state, dict) or set(state) != set(expected):
            raise ValueError(
                f"Layer '{self.name}' expects `state` to be a dict with keys "
                f"{sorted(expected)}; got {type(state).__name__} "
                f"{sorted(state) if isinstance(state, dict) else ''}."
            )
        for name, (shape, _) in expected.items():
            got = tuple(state[name].shape)
            if len(got) != len(shape) or not all(map(_same_size, got, shape)):
                raise ValueError(
                    f"Layer '{self.name}': `state['{name}']` must have shape "
                    f"{tuple(shape)}; got {got}."
                )

    def get_config(self):
        config = super().get_config()
        config["stateful"] = self.stateful
        return config


def _same_size(a, b):
    """False only when both sizes are static and differ (unknown sizes pass)."""
    return not (isinstance(a, int) and isinstance(b, int)) or a == b
