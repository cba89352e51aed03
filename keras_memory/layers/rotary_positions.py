"""Rotary positions for a sliding window: standard or reversed RoPE, with NTK scaling."""

from keras_memory.ops.checks import check_int, check_number
from keras_memory.ops.rotary import rotary_base, rotate

ROTARY_MODES = ("standard", "reversed")


def check_rotary_options(rotary, rotary_base, rotary_scaling, rotary_trained_window, head_dim):
    """Returns the rotary options checked, or raises ValueError naming the bad one.

    The base, scaling and trained window are checked even without `rotary`:
    a layer keeps them in its config either way.

    Returns:
        `(rotary, rotary_base, rotary_scaling, rotary_trained_window)`.
    """
    if rotary is not None and rotary not in ROTARY_MODES:
        raise ValueError(f"`rotary` must be None, 'standard' or 'reversed'; got {rotary!r}.")
    if rotary and head_dim % 2:
        raise ValueError(f"`rotary` needs an even `head_dim`; got {head_dim}.")
    return (
        rotary,
        check_number("rotary_base", rotary_base, 0.0, exclusive_minimum=True),
        check_number("rotary_scaling", rotary_scaling, 1.0),
        check_int("rotary_trained_window", rotary_trained_window, allow_none=True),
    )


class RotaryPositions:
    """Rotary position embeddings of a window's queries and keys (RoPE, LSWT's reversed).

    A piece the windowed attention layers compose (see `WindowedAttention`):
    it rotates queries and keys by their positions within the segment and
    its cache, so only distances matter. `"reversed"` counts positions back
    from the newest token (the LSW Transformer's choice); since only
    differences matter, that flips the sign of every position.

    Args:
        mode: str. `"standard"` or `"reversed"`.
        head_dim: int. Size of each head (even).
        window_length: int. The window `W` (for dynamic NTK).
        base: float. Base frequency. Defaults to 10000.
        scaling: float >= 1. NTK-aware scaling of the base
            (`base * s ** (d / (d - 2))`). Defaults to 1.
        trained_window: int or None. Dynamic NTK: the scaling is at least
            `window_length / trained_window`, so a model run with a longer
            window than it was trained with stretches its wavelengths.

    Call arguments:
        x: float tensor `(batch, length, heads, head_dim)`.
        positions: 1-D numpy array of `length` positions (static).

    Returns:
        A tensor like `x`.

    Example:
    ```python
    rotary = RotaryPositions("reversed", head_dim=16, window_length=32, base=5e5)
    rotated = rotary(np.ones((2, 32, 4, 16), "float32"), np.arange(32))
    ```

    References:
        - [Su et al., 2021 (RoPE)](https://arxiv.org/abs/2104.09864)
        - [Peng et al., 2023 (NTK-aware and dynamic scaling)](https://arxiv.org/abs/2309.00071)
    """

    def __init__(
        self, mode, head_dim, window_length, base=10000.0, scaling=1.0, trained_window=None
    ):
        self.mode = mode
        scaling = max(scaling, window_length / trained_window) if trained_window else scaling
        self.base = rotary_base(base, head_dim, scaling)

    def __call__(self, x, positions):
        if self.mode == "reversed":
            # Counted back from the newest token: only the sign of distances flips.
            positions = -positions
        return rotate(x, positions, self.base)
