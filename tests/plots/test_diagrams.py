import pytest

from keras_memory.plots import plot_melodi_mask, plot_memory_sharding, plot_window_mask


@pytest.mark.parametrize(
    "draw",
    [
        plot_window_mask,
        lambda path: plot_window_mask(path, include_self=True),
        plot_melodi_mask,
        plot_memory_sharding,
    ],
)
def test_each_diagram_is_written(draw, tmp_path):
    path = str(tmp_path / "diagram.png")
    assert draw(path) == path
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
