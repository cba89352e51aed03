"""What every plot module shares: pyplot on a file-only backend, saving, inlining.

The plot modules get pyplot from `pyplot()` only, inside their functions, so
that importing `keras_memory.plots` (as `benchmarks/soak.py` does for
`cost_by_document_length`) does not import matplotlib.
"""


def pyplot():
    """matplotlib's `pyplot`, on the Agg backend: figures go to files, no window opens.

    The one place the backend is chosen; every plot in `keras_memory.plots`
    calls it first, so a figure can be drawn on a machine without a display.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path):
    """Lays out `fig`, writes it to `path` (its format from the extension) and closes it.

    Returns:
        `path`.
    """
    fig.tight_layout()
    fig.savefig(path)
    pyplot().close(fig)
    return path


def inline_png(path, alt="figure"):
    """An HTML `<img>` tag holding the PNG file at `path` (base64), for pages
    and notebooks that show a figure without serving the file."""
    import base64
    import html

    with open(path, "rb") as f:
        data = base64.b64encode(f.read()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
