"""Rotary position embeddings (RoPE), standard or reversed, with NTK-aware scaling."""

import numpy as np
from keras import ops


def rotary_base(base, head_dim, scaling=1.0):
    """The base frequency after NTK-aware scaling by `scaling` (>= 1).

    Stretching the longest wavelengths by `scaling` while keeping the
    shortest ones: `base * scaling ** (d / (d - 2))` (the "NTK-aware"
    rule; dynamic NTK picks `scaling` from the length actually attended).
    """
    if scaling < 1:
        raise ValueError(f"`scaling` must be >= 1; got {scaling!r}.")
    if head_dim <= 2:
        return base
    return base * scaling ** (head_dim / (head_dim - 2))


def rotate(x, positions, base=10000.0):
    """Rotates feature pairs of `x` by angles `position * base**(-2i/d)`.

    Pairs are the two halves of the last axis (GPT-NeoX layout), so the dot
    product of a query rotated at position `p` and a key rotated at `q`
    depends only on `p - q`.

    Args:
        x: float tensor `(batch, length, heads, head_dim)`, `head_dim` even.
        positions: 1-D numpy array of `length` positions (static).
        base: float. Base frequency.

    Returns:
        A tensor like `x`.
    """
    x = ops.convert_to_tensor(x)
    head_dim = x.shape[-1]
    if head_dim % 2:
        raise ValueError(f"Rotary embeddings need an even head_dim; got {head_dim}.")
    half = head_dim // 2
    inverse = base ** (-np.arange(half, dtype=np.float64) / half)
    angles = np.asarray(positions, np.float64)[:, None] * inverse[None, :]
    cos = ops.cast(np.cos(angles)[None, :, None, :], x.dtype)
    sin = ops.cast(np.sin(angles)[None, :, None, :], x.dtype)
    first, second = x[..., :half], x[..., half:]
    return ops.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)
