"""`CommandParser`: argparse's parser as every `keras-memory` command uses it.

Three changes a user meets: a bad flag is one line (`keras-memory train:
error: argument --steps: expected an int >= 1; got '0'`) and exit code 2,
without the usage block; `--help` shows every default; and the parsed
namespace says which flags were typed (`args.given`), so `--resume` can take
the saved configuration for the rest and a flag that does not apply can be
refused rather than ignored.
"""

import argparse


class _NotGiven:
    """A flag's default while parsing, marking it "not on the command line".

    `--help` is printed in the middle of parsing, so it shows (and
    `DefaultsHelpFormatter` tests) the default it stands for.
    """

    def __init__(self, default):
        self.default = default

    def __str__(self):
        return str(self.default)


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Appends `(default: X)` to a flag's help unless it says its default already."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if isinstance(default, _NotGiven):
            default = default.default
        if (
            not action.option_strings
            or "default" in text
            or any(default is hidden for hidden in (None, False, argparse.SUPPRESS))
        ):
            return text
        return f"{text} (default: %(default)s)"


class CommandParser(argparse.ArgumentParser):
    """argparse's parser with one-line errors, shown defaults and `args.given`."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        # Abbreviated flags would let `--verb` pass where `--verbose` is read early.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_args(self, args=None, namespace=None):
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            # Named by the sub-command they were typed to, as every other error is.
            command = getattr(parsed, "command", None)
            prog = f"{self.prog} {command}" if isinstance(command, str) else self.prog
            self.exit(
                2,
                f"{prog}: error: unrecognized arguments: {' '.join(extras)} (see {prog} --help)\n",
            )
        return parsed

    def parse_known_args(self, args=None, namespace=None):
        # Every default is swapped for a marker while parsing, so what remains
        # a marker afterwards was not typed; then the real defaults go back.
        defaults = {}
        for action in self._actions:
            if action.dest is not argparse.SUPPRESS and action.default is not argparse.SUPPRESS:
                defaults[action] = action.default
                action.default = _NotGiven(action.default)
        try:
            parsed, rest = super().parse_known_args(args, namespace)
        finally:
            for action, default in defaults.items():
                action.default = default
        given = set(getattr(parsed, "given", ()))
        for action, default in defaults.items():
            if not isinstance(getattr(parsed, action.dest, None), _NotGiven):
                given.add(action.dest)
                continue
            if isinstance(default, str) and action.type is not None:
                default = self._get_value(action, default)
            setattr(parsed, action.dest, default)
        parsed.given = frozenset(given)
        return parsed, rest


def add_verbose_flag(parser):
    """Adds `--verbose`: library logs, and a traceback with an error's one line."""
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="Show TensorFlow/JAX logs, every skipped file, and the traceback of an error.",
    )


def parse_command(command, argv):
    """`argv` parsed as the command line of `command` (a module of `keras_memory.cli`).

    The demo runs `train`, `evaluate` and `generate` this way, so each step
    is the command line a user would type.
    """
    name = command.__name__.rsplit(".", 1)[1]
    parser = CommandParser(prog=f"keras-memory {name}")
    command.add_arguments(parser)
    add_verbose_flag(parser)
    return parser.parse_args(argv)
