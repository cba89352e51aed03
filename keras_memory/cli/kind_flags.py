"""`--kind` and the memory kinds' own flags, made from the kind registry.

Each field of a kind's options dataclass becomes a flag: `--` and its name
with `_` as `-`, its help and choices from the field's metadata, its type
from its default (or annotation). An option more than one kind has (the
memorizing kinds' `memory_size`) is one flag. An option the presets hold
(`num_states`, the Melodi sizes) defaults to the `--preset`'s value. A kind
registered with `register_kind` before the parser is built gets its flags
too.

Values are checked as they are parsed (argparse `type=` functions), so a bad
one is refused naming its flag before anything is built: an int option must
be >= 1 (>= 0 when its default is 0, or its layer reads 0 as "none"), a
float must be finite, and one that is a probability (a dropout, a rate) in
[0, 1].
"""

import argparse
import dataclasses
import re
import typing

from keras_memory.cli.values import float_within, int_at_least, memory_size, positive_float
from keras_memory.models.presets import MEMORY_SIZES

DEFAULT_KIND = "xl"

# Kind options that are not flags: the kind's default applies on the command line.
NOT_FLAGS = ("memory_layer", "recurrent_layer", "long_term_layer", "state_dropout")

# What a few flags do differently from their option's field.
OVERRIDES = {
    "memory_size": {
        "type": memory_size,
        "help": f"memory entries per row and head: a number or one of "
        f"{', '.join(MEMORY_SIZES)}; a multiple of the segment length",
    },
    "retrieval": {
        "help": "kNN retrieval: exact top-k on device, meliad's bucketed argmax, the "
        "backend's approx_max_k, or a ScaNN index on the host (default: exact with the "
        "memory on the device, scann with it on the host)",
    },
    "memory_scale": {"type": positive_float},
    # The layers read 0 as "no such memory".
    "short_term_memory_size": {"minimum": 0},
    "long_term_memory_size": {"minimum": 0},
    # The option also takes layer indices; the flag sets True only.
    "feedback": {
        "help": "every other layer also reads the recurrent state written after the "
        "previous window (meliad's feedback variant)",
    },
}

# Words that, in a float option's name or help, make it a probability: in [0, 1].
PROBABILITY_WORDS = ("dropout", "probability", "rate")


@dataclasses.dataclass(frozen=True)
class KindFlag:
    """One kind option's flag: the option's field, what it reads, the kinds that have it."""

    field: dataclasses.Field
    value_type: type
    kinds: tuple

    @property
    def name(self):
        return self.field.name

    @property
    def flag(self):
        return "--" + self.name.replace("_", "-")

    def parser(self):
        """The flag's argparse `type`: reads a value and refuses one the option cannot take."""
        override = OVERRIDES.get(self.name, {})
        if "type" in override:
            return override["type"]
        if self.value_type is int:
            return int_at_least(override.get("minimum", 0 if self.field.default == 0 else 1))
        if self.value_type is float:
            said = f"{self.name} {self.field.metadata.get('help', '')}".lower()
            if set(re.findall("[a-z]+", said)) & set(PROBABILITY_WORDS):
                return float_within(0.0, 1.0)
            return float_within()
        return self.value_type


def kind_flags():
    """The kind options that are flags, in registry order: `{name: KindFlag}`."""
    from keras_memory.memories import get_kind, kind_names

    flags = {}
    for kind in map(get_kind, kind_names()):
        hints = typing.get_type_hints(kind.options)
        for field in dataclasses.fields(kind.options):
            known = flags.get(field.name)
            if known:
                flags[field.name] = dataclasses.replace(known, kinds=(*known.kinds, kind.name))
                continue
            value_type = _value_type(field.default, hints.get(field.name))
            if field.name not in NOT_FLAGS and value_type is not None:
                flags[field.name] = KindFlag(field, value_type, (kind.name,))
    return flags


def preset_options():
    """Kind options the presets hold: their flags default to the `--preset`'s value."""
    from keras_memory.memories.registry import all_option_names
    from keras_memory.models import PRESETS

    return {name for preset in PRESETS.values() for name in preset} & all_option_names()


def add_kind_flags(parser):
    """Adds `--kind` (also `--model`) and every registered kind's option flags."""
    from keras_memory.memories import get_kind, kind_names

    kinds = "; ".join(f"{name}: {get_kind(name).summary}" for name in kind_names())
    parser.add_argument(
        "--kind",
        "--model",
        dest="kind",
        default=DEFAULT_KIND,
        choices=kind_names(),
        metavar="KIND",
        help=f"Memory kind (default: {DEFAULT_KIND}). {kinds}.",
    )
    group = parser.add_argument_group(
        "memory-kind options",
        "The kinds' own options; each help starts with the kinds that read it.",
    )
    from_preset = preset_options()
    for option in kind_flags().values():
        _add_flag(group, option, option.name in from_preset)


def _add_flag(group, option, from_preset):
    field, override = option.field, OVERRIDES.get(option.name, {})
    default = None if from_preset or field.default is dataclasses.MISSING else field.default
    text = override.get("help") or field.metadata.get("help") or option.name.replace("_", " ")
    help_text = f"{', '.join(option.kinds)}: {text}"
    if option.value_type is bool and default is False:
        group.add_argument(option.flag, action="store_true", help=f"{help_text}.")
        return
    shown = "the preset's" if from_preset else default
    help_text += f"; default: {shown}."
    if option.value_type is bool:
        action = argparse.BooleanOptionalAction
        group.add_argument(option.flag, action=action, default=default, help=help_text)
        return
    choices = field.metadata.get("choices")
    group.add_argument(
        option.flag,
        type=option.parser(),
        default=default,
        choices=tuple(choices) if choices is not None else None,
        help=help_text,
    )


def _value_type(default, annotation):
    """`bool`, `int`, `float` or `str`: what a flag reads; None when none fits."""
    if isinstance(default, bool | int | float | str):
        return type(default)
    for candidate in typing.get_args(annotation) or (annotation,):
        if candidate in (bool, int, float, str):
            return candidate
    return None
