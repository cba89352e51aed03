"""The one place that names the memory kinds.

A kind is a way of giving a stack of transformer blocks memory across
segments: `"xl"`, `"memorizing"`, `"block_recurrent"`, ... Each is declared
once, in its own folder, as a `MemoryKind`: its name, a one-line summary, an
options dataclass (the kind's own arguments with their defaults and help
text, from which the CLI makes its flags) and the function that builds its
blocks. Everything else (`MemoryLM.from_preset`, `make_blocks`, the CLI, the
benchmarks) asks this registry; nothing compares a kind's name with a
string.

Adding a kind is one folder under `keras_memory/memories/` holding its layers
and a `MemoryKind`, and one line in `_BUILT_IN` below (or a call to
`register_kind` from your own code; see the architecture page of the docs).
"""

import dataclasses

from keras_memory.memories.block_recurrent.kind import BLOCK_RECURRENT
from keras_memory.memories.melodi.kind import MELODI
from keras_memory.memories.memorizing.kind import MEMORIZING, MEMORIZING_DENSE
from keras_memory.memories.memory_kind import MemoryKind
from keras_memory.memories.stack import LayerByLayer, StackSizes
from keras_memory.memories.transformer_xl.kind import LOCAL, XL

_BUILT_IN = (LOCAL, XL, MEMORIZING, MEMORIZING_DENSE, BLOCK_RECURRENT, MELODI)
_KINDS = {}


def register_kind(kind):
    """Adds a `MemoryKind` so `make_blocks`, `from_preset` and the CLI know it.

    Raises:
        ValueError: the name is taken, or `kind` is not a `MemoryKind`.
    """
    if not isinstance(kind, MemoryKind):
        raise ValueError(f"`kind` must be a MemoryKind; got {type(kind).__name__}.")
    if kind.name in _KINDS:
        raise ValueError(f"A memory kind named {kind.name!r} is already registered.")
    if not dataclasses.is_dataclass(kind.options):
        raise ValueError(f"`options` of kind {kind.name!r} must be a dataclass type.")
    _KINDS[kind.name] = kind
    return kind


def unregister_kind(name):
    """Removes a kind added with `register_kind` (the built-in ones stay)."""
    if name in {k.name for k in _BUILT_IN}:
        raise ValueError(f"The built-in kind {name!r} cannot be removed.")
    _KINDS.pop(name, None)


def get_kind(name):
    """Returns the `MemoryKind` called `name`, or raises ValueError naming `kind`."""
    if not isinstance(name, str) or name not in _KINDS:
        raise ValueError(f"`kind` must be one of {kind_names()}; got {name!r}.")
    return _KINDS[name]


def kind_names():
    """The registered kinds' names, built-in ones first."""
    return tuple(_KINDS)


def all_option_names():
    """Every registered kind's own option names (a preset may hold any of them)."""
    return {name for kind in _KINDS.values() for name in kind.option_names()}


def _drop_other_kinds_options(spec, options):
    """Removes other kinds' options from `options`, refusing any that asks for something.

    A size (a field with `metadata["size"]`, such as `memory_size`) is left out
    quietly, so one dict of sizes serves every kind, as the presets do; any
    other option of another kind must be at its default, or the call is refused.
    """
    for kind in _KINDS.values():
        if kind is spec:
            continue
        for field in dataclasses.fields(kind.options):
            if field.name not in options or field.name in spec.option_names():
                continue
            value = options[field.name]
            if field.metadata.get("size") or value == field.default:
                options.pop(field.name)
                continue
            owners = [k.name for k in _KINDS.values() if field.name in k.option_names()]
            raise ValueError(
                f"`{field.name}` is an option of the {' and '.join(owners)} kind"
                f"{'s' if len(owners) > 1 else ''}, not of {spec.name!r}; got "
                f"{field.name}={value!r}."
            )


def stack_runner(blocks):
    """How a model runs `blocks`: the runner a kind claims for them, else `LayerByLayer`."""
    for kind in _KINDS.values():
        runner = kind.stack_runner(blocks) if kind.stack_runner else None
        if runner is not None:
            return runner
    return LayerByLayer()


def make_blocks(
    kind,
    *,
    num_layers,
    num_heads,
    head_dim,
    intermediate_dim,
    window_length,
    stateful=False,
    dropout=0.0,
    dtype=None,
    activation=None,
    **options,
):
    """Builds the list of blocks of a `kind` model.

    Args:
        kind: str. A registered kind (`kind_names()`): `"local"` (sliding
            window, no cache: the baseline), `"xl"` (sliding window and
            Transformer-XL cache in every layer), `"memorizing"` (`"xl"`
            with one `KNNAttention` layer), `"memorizing_dense"` (`"xl"` with
            one `DenseKVAttention` layer), `"block_recurrent"` (`"xl"` with a
            `BlockRecurrentAttention` layer) or `"melodi"` (`MelodiLayer`s;
            build them into a `MelodiLM`).
        num_layers: int. Number of blocks.
        num_heads: int. Attention heads per layer.
        head_dim: int. Size of each head.
        intermediate_dim: int. Feed-forward width.
        window_length: int. Attention window `W`.
        stateful: bool. Stateful blocks for `model.fit`.
        dropout: float. Residual dropout.
        dtype: dtype policy of the blocks.
        activation: str or None. Feed-forward activation, e.g. `"swiglu"`;
            None: the kind's default (`"gelu"`; `"relu"` for Melodi, as
            meliad).
        **options: the kind's own options (see its options dataclass, e.g.
            `memory_size` for `"memorizing"`, `num_states` for
            `"block_recurrent"`), and options every attention layer takes
            (`use_cache`, `include_self`, `normalize_keys`, `num_key_value_heads`,
            `use_position_bias`, `rotary`, `num_registers`, ...). `use_cache`
            None (the default) means the kind's own choice.

    Returns:
        A list of `MemoryLayer` blocks.

    Example:
    ```python
    blocks = keras_memory.models.make_blocks(
        "memorizing", num_layers=2, num_heads=4, head_dim=16,
        intermediate_dim=256, window_length=32, memory_size=1024,
    )
    ```
    """
    spec = get_kind(kind)
    own = {name: options.pop(name) for name in spec.option_names() if name in options}
    _drop_other_kinds_options(spec, options)
    if options.get("use_cache", "unset") is None:
        options.pop("use_cache")
    if "use_cache" in options and not isinstance(options["use_cache"], bool):
        raise ValueError(f"`use_cache` must be a bool or None; got {options['use_cache']!r}.")
    if "use_cache" in options and not spec.has_cache:
        raise ValueError(f"The {kind} kind has no XL cache to choose; do not pass `use_cache`.")
    unsupported = sorted(name for name in options if not spec.takes_attention_option(name))
    if unsupported:
        raise ValueError(
            f"The {kind} kind does not take {unsupported}; its layers take "
            f"{list(spec.attention_options)}."
        )
    sizes = StackSizes(
        num_layers=num_layers,
        num_heads=num_heads,
        head_dim=head_dim,
        intermediate_dim=intermediate_dim,
        window_length=window_length,
        stateful=stateful,
        dropout=dropout,
        dtype=dtype,
        activation=activation,
    )
    return spec.build_blocks(sizes, spec.options(**own), options)


for _kind in _BUILT_IN:
    register_kind(_kind)

# The built-in kinds' names (a kind registered later is in `kind_names()`).
MODEL_KINDS = kind_names()
