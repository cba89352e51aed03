"""How every `keras-memory bench` command reports: one JSON line per record."""

import json


def json_lines_reporter(output=None, hidden=()):
    """A `report(record)` that prints a record as one JSON line and keeps it.

    Args:
        output: str or None. A file each record is appended to, whole.
        hidden: keys left out of the printed line only (long curves).

    Returns:
        The function.
    """

    def report(record):
        shown = {k: v for k, v in record.items() if k not in hidden}
        print(json.dumps(shown), flush=True)
        if output:
            with open(output, "a") as f:
                f.write(json.dumps(record) + "\n")

    return report
