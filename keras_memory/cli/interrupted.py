"""`Interrupted`: Ctrl-C during a command, with what was kept and how to continue."""


class Interrupted(Exception):
    """Ctrl-C: the message says what was kept and how to continue (exit code 130)."""
