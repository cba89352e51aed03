"""Attention masks, as static numpy tables."""

from keras_memory.ops.position_bias import relative_positions


def window_mask(num_queries, num_keys, window_length, include_self=False, offset=None):
    """Causal sliding-window mask.

    With `include_self=False` (meliad's default) each query attends to exactly
    the `window_length` tokens before it and not to itself; the token reaches
    itself through the residual connection. With `include_self=True` it
    attends to itself and the `window_length - 1` tokens before it (the
    conventional causal window).

    Args:
        num_queries: int. Number of queries.
        num_keys: int. Number of keys; the last queries line up with the last
            keys unless `offset` is given.
        window_length: int. Number of keys each query may see.
        include_self: bool. Whether a query attends to its own position.
        offset: int or None. See `relative_positions`.

    Returns:
        A bool numpy array of shape `(num_queries, num_keys)`, True where
        attention is allowed.
    """
    if window_length < 1:
        raise ValueError(f"`window_length` must be >= 1, got {window_length}.")
    rel = relative_positions(num_queries, num_keys, offset=offset)
    if include_self:
        return (rel <= 0) & (rel > -window_length)
    return (rel < 0) & (rel >= -window_length)


def summary_causal_mask(window_length, summary_size, memory_size):
    """Melodi's mask: queries `[x, u]` over keys `[m, x, u]`, strictly causal.

    Context token `j` sees the memory `m` and the context tokens before it,
    never a summary token; summary token `j` sees `m`, every context token
    and the summary tokens before it. Nobody attends to itself (meliad's
    `relative_positions < 0`).

    Args:
        window_length: int. Context tokens `W`.
        summary_size: int. Summary tokens `U`.
        memory_size: int. Short-term memory tokens `M` before them.

    Returns:
        A bool numpy array `(W + U, M + W + U)`, True where attention is allowed.
    """
    queries = window_length + summary_size
    return relative_positions(queries, memory_size + queries) < 0
