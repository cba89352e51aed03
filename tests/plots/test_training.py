import math

from keras_memory.plots import plot_losses


def test_the_loss_curves_are_written(tmp_path):
    path = str(tmp_path / "loss.png")
    curves = {"local": [math.log(256)] * 50, "xl": [math.log(200)] * 50}
    assert plot_losses(curves, path, smoothing=5) == path
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
