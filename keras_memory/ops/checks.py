"""Checks of layer arguments and call inputs that fail early and say what is wrong.

A bad argument should raise a `ValueError` (or `TypeError`) naming it and what
it must be, before a backend kernel sees it and before any memory state is
read or written. Everything here reads Python values, static shapes and
dtypes only: it runs once at trace time and adds nothing to a jitted step.
Value checks that need the data (token ids in range, finite numbers) belong
to the numpy entry points (`SegmentLM.check_tokens`, the data pipeline) and
to `keras_memory.training.check_finite`.
"""

import numbers

import keras
from keras import ops


def check_int(name, value, minimum=1, maximum=None, allow_none=False):
    """Returns `value` as a Python int, or raises ValueError naming `name`.

    Args:
        name: str. The argument's name, shown in the message.
        value: the argument. Python and numpy integers pass; bools (Python
            or numpy), floats and strings do not.
        minimum: int or None. Smallest allowed value (None: any int).
        maximum: int or None. Values must be below it (exclusive; None: no
            upper bound).
        allow_none: bool. Let None through (returned as None).

    Returns:
        `int(value)`, or None.

    Example:
    ```python
    num_heads = check_int("num_heads", num_heads)  # raises for 0, -1, 2.0, True
    pad_id = check_int("pad_id", pad_id, minimum=0, maximum=vocab_size)
    ```
    """
    if value is None and allow_none:
        return None
    bad = not _is_int(value)
    bad = bad or (minimum is not None and value < minimum)
    bad = bad or (maximum is not None and value >= maximum)
    if bad:
        if maximum is None:
            what = {None: "an int", 1: "a positive int"}.get(minimum, f"an int >= {minimum}")
        else:
            what = "an int" if minimum is None else f"an int >= {minimum} and"
            what += f" < {maximum}"
        raise ValueError(
            f"`{name}` must be {what}{' or None' if allow_none else ''}; got {value!r}."
        )
    return int(value)


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_number(name, value, minimum=None, maximum=None, exclusive_minimum=False):
    """Returns `value` as a Python float, or raises ValueError naming `name`.

    Args:
        name: str. The argument's name.
        value: the argument: any real number but a bool.
        minimum: float or None. Smallest allowed value.
        maximum: float or None. Largest allowed value.
        exclusive_minimum: bool. `minimum` itself is not allowed.

    Returns:
        `value` (numpy scalars as Python floats).

    Example:
    ```python
    dropout = check_number("dropout", dropout, 0.0, 1.0)
    ```
    """
    low = "(" if exclusive_minimum else "["
    bounds = f"in {low}{'-inf' if minimum is None else minimum}, "
    bounds += f"{'inf' if maximum is None else maximum}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != value:
        raise ValueError(f"`{name}` must be a number {bounds}; got {value!r}.")
    below = minimum is not None and (value <= minimum if exclusive_minimum else value < minimum)
    if below or (maximum is not None and value > maximum):
        raise ValueError(f"`{name}` must be a number {bounds}; got {value!r}.")
    return value if isinstance(value, (int, float)) else float(value)


def check_bool(name, value):
    """Returns `value` as a Python bool, or raises ValueError naming `name`.

    A flag given as a string (`"no"`) or a number would silently count as
    True; only `True`, `False` and numpy bools pass.

    Example:
    ```python
    use_cache = check_bool("use_cache", use_cache)
    ```
    """
    if not isinstance(value, bool) and type(value).__name__ != "bool_":
        raise ValueError(f"`{name}` must be True or False; got {value!r}.")
    return bool(value)


def check_choice(name, value, choices):
    """Returns `value` if it is one of `choices`, or raises ValueError naming `name`.

    Example:
    ```python
    gate = check_choice("gate", gate, ("fixed", "lstm"))
    ```
    """
    if not isinstance(value, (str, type(None))) or value not in choices:
        raise ValueError(f"`{name}` must be one of {tuple(choices)}; got {value!r}.")
    return value


def check_activation(name, value, extra=()):
    """Raises ValueError naming `name` unless Keras knows the activation `value`.

    Args:
        name: str. The argument's name.
        value: str or callable. An activation for `keras.activations.get`.
        extra: names accepted besides Keras's (e.g. `"swiglu"`).

    Returns:
        `value`, unchanged.
    """
    if isinstance(value, str) and value in extra:
        return value
    try:
        keras.activations.get(value)
    except (ValueError, TypeError) as error:
        known = f" or one of {tuple(extra)}" if extra else ""
        raise ValueError(
            f"`{name}` must be a Keras activation (a name or a callable){known}; got {value!r}."
        ) from error
    return value


def check_initializer(name, value):
    """Returns `keras.initializers.get(value)`, or raises ValueError naming `name`."""
    try:
        return keras.initializers.get(value)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"`{name}` must be a Keras initializer (a name, config or instance); got {value!r}."
        ) from error


def static_shape(shape_or_tensor):
    """The static shape of a tensor (or a shape) as a tuple of ints and Nones."""
    shape = getattr(shape_or_tensor, "shape", shape_or_tensor)
    return tuple(None if d is None else int(d) for d in shape)


def dtype_name(tensor):
    """The standardised dtype name of a tensor (`"float32"`, `"int32"`, `"bool"` ...)."""
    return keras.backend.standardize_dtype(tensor.dtype)


def is_integer_dtype(dtype):
    return dtype.startswith(("int", "uint"))


def require_tensor(name, value, prefix=""):
    """Returns `value` as a tensor; raises TypeError naming `name` if it is not array-like.

    Tensors and numpy arrays pass through; Python lists and scalars are
    converted (at trace time, as constants).
    """
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return value
    try:
        return ops.convert_to_tensor(value)
    except Exception as error:  # noqa: BLE001 (each backend raises its own type)
        raise TypeError(
            f"{prefix}`{name}` must be a tensor or array; got {type(value).__name__}."
        ) from error


def check_shape(name, shape, expected, prefix=""):
    """Raises ValueError naming `name` unless `shape` matches `expected`.

    Args:
        name: str. The argument's name, e.g. `"x"` or `"state['keys']"`.
        shape: a tensor or a shape.
        expected: tuple of the expected sizes: an int is checked (where the
            shape's size is static), a str (`"batch"`) or None is any size.
        prefix: str. Put before the message (e.g. the layer's name).

    Example:
    ```python
    check_shape("x", x, ("batch", "segment", 64))
    # ValueError: `x` must be (batch, segment, 64); got (2, 16, 32).
    ```
    """
    shape = static_shape(shape)
    wanted = "(" + ", ".join(str(d) for d in expected) + ("," if len(expected) == 1 else "") + ")"
    if len(shape) != len(expected):
        raise ValueError(
            f"{prefix}`{name}` must have rank {len(expected)}, {wanted}; got rank "
            f"{len(shape)} with shape {shape}."
        )
    for got, want in zip(shape, expected):
        if isinstance(want, int) and got is not None and got != want:
            raise ValueError(f"{prefix}`{name}` must be {wanted}; got {shape}.")


def check_not_empty(name, shape, prefix=""):
    """Raises ValueError naming `name` if a `(batch, segment, ...)` shape has no rows or tokens.

    A zero-length segment or batch has nothing to attend to or remember:
    each backend fails on it in its own way, deep in a kernel (a division by
    zero on JAX, an empty reduction on TensorFlow, a bad reshape on torch),
    and a stateful layer built on it would size its memory for 0 rows. Only
    static sizes are read: an unknown (None) size passes.

    Args:
        name: str. The argument's name, e.g. `"tokens"` or `"x"`.
        shape: a tensor or a shape, batch first, the segment second.
        prefix: str. Put before the message (e.g. the layer's name).

    Example:
    ```python
    check_not_empty("tokens", tokens)
    # ValueError: `tokens` must have at least 1 token per segment; got shape (2, 0).
    ```
    """
    shape = static_shape(shape)
    if shape and shape[0] == 0:
        raise ValueError(f"{prefix}`{name}` must have at least 1 row; got shape {shape}.")
    if len(shape) > 1 and shape[1] == 0:
        raise ValueError(
            f"{prefix}`{name}` must have at least 1 token per segment; got shape {shape}."
        )


def check_float_input(name, tensor, prefix=""):
    """Raises ValueError naming `name` unless `tensor` has a float dtype."""
    dtype = dtype_name(tensor)
    if not keras.backend.is_float_dtype(dtype):
        raise ValueError(
            f"{prefix}`{name}` must be a float tensor (embeddings, not token ids); got dtype "
            f"{dtype}."
        )


def check_reset(reset, batch_size, prefix=""):
    """Returns `reset` as a bool `(batch,)` tensor, or raises naming `reset`.

    Args:
        reset: bool or int tensor `(batch,)`, array, list, or None (no row
            starts a document: all False).
        batch_size: int or scalar tensor. Rows of the batch.
        prefix: str. Put before the message.

    Returns:
        A bool tensor `(batch,)`.
    """
    if reset is None:
        return ops.zeros((batch_size,), dtype="bool")
    reset = require_tensor("reset", reset, prefix)
    dtype = dtype_name(reset)
    static_batch = batch_size if isinstance(batch_size, int) else None
    if dtype != "bool" and not is_integer_dtype(dtype):
        raise ValueError(
            f"{prefix}`reset` must be a bool (or 0/1 int) tensor of shape (batch,); got dtype "
            f"{dtype}."
        )
    shape = static_shape(reset)
    if len(shape) != 1 or not same_size(shape[0], static_batch):
        raise ValueError(
            f"{prefix}expected `reset` of shape (batch,) = ({static_batch},); got shape {shape}."
        )
    return ops.cast(reset, "bool")


def same_size(a, b):
    """False only when both sizes are static and differ (unknown sizes pass)."""
    return not (isinstance(a, int) and isinstance(b, int)) or a == b
