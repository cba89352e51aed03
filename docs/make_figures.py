"""Regenerates the pictures under docs/images from the library's own code.

python docs/make_figures.py
"""

import os

from keras_memory.plots import plot_melodi_mask, plot_window_mask

HERE = os.path.dirname(os.path.abspath(__file__))

if __name__ == "__main__":
    images = os.path.join(HERE, "images")
    os.makedirs(images, exist_ok=True)
    print(plot_window_mask(os.path.join(images, "window_mask.png")))
    print(plot_window_mask(os.path.join(images, "window_mask_self.png"), include_self=True))
    print(plot_melodi_mask(os.path.join(images, "melodi_mask.png")))
