"""`MemoryKind`: how a memory mechanism declares itself to the registry."""

import dataclasses
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class MemoryKind:
    """A memory kind: what `make_blocks(name, ...)` and `--kind name` build.

    Args:
        name: str. The kind's name in presets, configs and the CLI.
        summary: str. One line for `--help` and the docs.
        options: a dataclass type. The kind's own options, each a field with
            a default; `metadata={"help": ..., "choices": ...}` documents it
            for the CLI, and `"size": True` marks a size that other kinds
            ignore (so one dict of sizes serves every kind, as in the
            presets); another kind's option that is not a size is refused
            unless it is at its default. Its `__post_init__` may validate
            them.
        build_blocks: callable `(sizes, options, attention_options)` ->
            list of `MemoryLayer` blocks, with `sizes` a `StackSizes`,
            `options` an instance of `options` and `attention_options` a dict
            of options every attention layer of the stack takes
            (`normalize_keys`, `rotary`, `use_cache`, ...).
        model_class: str. The registered Keras name of the model class that
            runs the blocks (`"keras_memory>MemoryLM"`, or
            `"keras_memory>MelodiLM"` for a stack that needs summary tokens).
        attention_options: tuple of str or None. The attention options the
            kind's layers accept; None: all of them.
        has_cache: bool. Whether the kind's layers can carry the
            Transformer-XL cache (`use_cache`).
        stack_runner: callable `(blocks)` -> a runner or None. A kind whose
            stacks cannot run layer by layer returns, for the blocks that
            need it, an object like `LayerByLayer` (Block-Recurrent
            feedback runs the stack window by window); None for others.
    """

    name: str
    summary: str
    options: type
    build_blocks: Callable
    model_class: str = "keras_memory>MemoryLM"
    attention_options: tuple | None = None
    has_cache: bool = True
    stack_runner: Callable | None = None

    def takes_attention_option(self, name):
        """Whether the kind's layers take the attention option `name`."""
        return self.attention_options is None or name in self.attention_options

    def option_names(self):
        """The names of the kind's own options."""
        return tuple(field.name for field in dataclasses.fields(self.options))

    def own_options(self, **candidates):
        """The `candidates` that are this kind's own options; the others left out.

        A script with flags for several kinds passes them all and gets what
        this kind reads, without naming kinds:
        `get_kind(kind).own_options(memory_size=..., gate=...)`.
        """
        names = self.option_names()
        return {name: value for name, value in candidates.items() if name in names}
