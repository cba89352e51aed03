import base64

from keras_memory.plots import inline_png
from keras_memory.plots.figure import pyplot, save

PNG = b"\x89PNG\r\n\x1a\n"


def test_figures_are_drawn_on_the_agg_backend_and_saved_closed(tmp_path):
    plt = pyplot()
    assert plt.get_backend().lower() == "agg"
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = str(tmp_path / "line.png")
    assert save(fig, path) == path
    assert not plt.fignum_exists(fig.number)
    with open(path, "rb") as f:
        assert f.read(8) == PNG


def test_inline_png_holds_the_file(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(PNG + b"rest")
    tag = inline_png(str(path), alt='a "quoted" figure')
    assert tag.startswith('<img alt="a &quot;quoted&quot; figure" src="data:image/png;base64,')
    assert base64.b64decode(tag.split(",", 1)[1].rstrip('">')) == PNG + b"rest"
