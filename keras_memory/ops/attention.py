"""Attention functions: safe softmax and causal sliding-window attention.

Shapes follow meliad: queries, keys and values are `(batch, length, heads,
head_dim)`. Everything is `keras.ops`, so it jits on every backend.
"""

import keras
import numpy as np
from keras import ops

from keras_memory.backend.broadcast_add import add_over_leading_axes
from keras_memory.ops.masks import window_mask
from keras_memory.ops.query_groups import grouped_heads_einsum

# Masked logits are set to this value before the softmax (meliad's -1e6).
MASKED_LOGIT = -1e6


def safe_softmax(logits, mask=None, axis=-1):
    """Softmax that gives all-zero weights to a fully masked row.

    A plain softmax spreads a fully masked row evenly over the masked keys;
    here such a row attends to nothing, so its output is zero.

    Args:
        logits: float tensor.
        mask: bool tensor broadcastable to `logits`, True where allowed, or
            None.
        axis: int. The axis to normalise over.

    Returns:
        A float32 tensor of `logits`' shape whose unmasked entries along
        `axis` sum to 1, or to 0 where every entry is masked.
    """
    logits = ops.cast(logits, "float32")
    if mask is None:
        return ops.softmax(logits, axis=axis)
    logits = ops.where(mask, logits, MASKED_LOGIT)
    row_max = ops.stop_gradient(ops.max(logits, axis=axis, keepdims=True))
    weights = ops.where(mask, ops.exp(logits - row_max), 0.0)
    total = ops.sum(weights, axis=axis, keepdims=True)
    return weights / ops.where(total > 0.0, total, 1.0)


def _block_keys(tensor, previous_block, num_blocks, block_length, blocks_per_window):
    """Returns `(batch, blocks, W + C, heads, dim)`: the keys each query block can see.

    Query block `g` (of `C` queries) sees key blocks `g .. g + W / C` of
    [previous window, segment]: the `W` keys before its first query and its
    own `C`.
    """
    batch, _, heads, dim = ops.shape(tensor)
    blocks = ops.concatenate([previous_block, tensor], axis=1)
    blocks = ops.reshape(blocks, (batch, num_blocks + blocks_per_window, block_length, heads, dim))
    return ops.concatenate(
        [blocks[:, offset : offset + num_blocks] for offset in range(blocks_per_window + 1)],
        axis=2,
    )


def default_query_block(window_length):
    """Queries per block: half the window for windows of 256 and longer."""
    return window_length // 2 if window_length % 2 == 0 and window_length >= 256 else window_length


def sliding_window_attention(
    queries,
    keys,
    values,
    *,
    window_length,
    cache_keys=None,
    cache_values=None,
    cache_valid=None,
    position_bias=None,
    logit_scale=None,
    include_self=False,
    memory_keys=None,
    memory_values=None,
    memory_valid=None,
    query_block=None,
):
    """Causal sliding-window attention over a segment, with an optional XL cache.

    The segment of `S = n * W` tokens is split into `n` windows of `W`
    queries. Window `k` attends to the keys of [block `k-1`, block `k`]
    (`2W` keys) under the causal window mask; block 0's previous block is the
    cache (the last `W` keys/values of the previous segment). Memory and
    compute are O(S * 2W), never O(S^2).

    Queries are computed in blocks of `C = query_block`: a block needs only
    the `W` keys before it and its own `C` (`W + C` of the window's `2W`),
    so with `W / C = 2` a quarter of a whole-window computation's logits
    (half of them masked) are never formed.

    Args:
        queries: float tensor `(batch, S, heads, head_dim)`.
        keys: float tensor `(batch, S, key_heads, head_dim)`; `key_heads`
            divides `heads` (grouped queries: query head `i` reads key head
            `i // (heads / key_heads)`, see `grouped_heads_einsum`).
        values: float tensor `(batch, S, key_heads, head_dim)`.
        window_length: int. `W`; `S` must be a multiple of it.
        cache_keys: float tensor `(batch, W, key_heads, head_dim)` or None. None
            means local-only attention: window 0 sees no previous block.
        cache_values: float tensor like `cache_keys`, or None.
        cache_valid: bool tensor `(batch,)` or None. Rows where it is False
            ignore their cache (the first segment of a document).
        position_bias: float tensor `(heads, W, 2W)` or None, added to the
            logits (aligned to the last key).
        logit_scale: float tensor `(heads,)` or None, multiplies the logits
            after the bias (meliad's learned scale for normalised keys).
        include_self: bool. See `window_mask`.
        memory_keys: float tensor `(batch, M, key_heads, head_dim)` or None:
            older entries every query may attend to, in the same softmax as
            its window (e.g. a compressed memory); no position bias.
        memory_values: float tensor like `memory_keys`, or None.
        memory_valid: bool tensor `(batch, M)` or None (all valid).
        query_block: int dividing `W`, or None for `default_query_block(W)`
            (`W / 2` for windows of 256 and longer, else `W`). Any value
            gives the same result.

    Returns:
        A tensor `(batch, S, heads, head_dim)` in the dtype of `values`.
    """
    batch, seq_len, heads, dim = ops.shape(queries)
    key_heads = keys.shape[2]
    if seq_len % window_length:
        raise ValueError(
            f"The segment length ({seq_len}) must be a multiple of "
            f"`window_length` ({window_length})."
        )
    use_cache = cache_keys is not None
    if use_cache:
        prev_keys, prev_values = cache_keys, cache_values
    else:
        prev_keys = ops.zeros((batch, window_length, key_heads, dim), dtype=keys.dtype)
        prev_values = ops.zeros((batch, window_length, key_heads, dim), dtype=values.dtype)
    block = default_query_block(window_length) if query_block is None else query_block
    if not isinstance(block, int) or block < 1 or window_length % block:
        raise ValueError(f"`query_block` must be an int dividing {window_length}; got {block!r}.")
    per_window = window_length // block
    num_blocks = seq_len // block
    visible = window_length + block
    window_keys = _block_keys(keys, ops.cast(prev_keys, keys.dtype), num_blocks, block, per_window)
    window_values = _block_keys(
        values, ops.cast(prev_values, values.dtype), num_blocks, block, per_window
    )
    window_queries = ops.reshape(queries, (batch, num_blocks, block, heads, dim))
    # The scale multiplies the queries and the (small) bias rather than every
    # logit, and the masks are added to the logits: one elementwise pass over
    # the `(C, W + C)` logits instead of four on XLA's CPU. `(q k + b) s` is
    # `(q s) k + b s`, and a masked logit's weight underflows to exactly zero.
    if logit_scale is not None:
        scale = ops.reshape(ops.cast(logit_scale, "float32"), (heads, 1, 1))
        window_queries = window_queries * ops.cast(
            ops.reshape(scale, (1, 1, 1, heads, 1)), window_queries.dtype
        )

    # Relative distances depend on neither the block nor the window, so one
    # `(C, W + C)` corner of the `(W, 2W)` bias serves every block.
    band = window_mask(block, visible, window_length, include_self)
    if position_bias is None:
        static_logits = np.where(band, 0.0, MASKED_LOGIT).astype("float32")
    else:
        static_logits = ops.cast(position_bias, "float32")[:, :block, :visible]
        if logit_scale is not None:
            static_logits = static_logits * scale
        static_logits = ops.where(band, static_logits, MASKED_LOGIT)
        static_logits = ops.broadcast_to(static_logits, (heads, block, visible))
    # Key block `g + o` of query block `g` is in the previous window (the
    # cache) when `g + o < W / C`: visible through a valid cache only.
    in_previous = np.arange(num_blocks)[:, None] + np.arange(per_window + 1)[None, :] < per_window
    in_previous = np.repeat(in_previous, block, axis=1)  # (blocks, W + C)
    if use_cache and cache_valid is not None:
        no_cache = ops.logical_not(ops.reshape(ops.cast(cache_valid, "bool"), (-1, 1, 1)))
        hidden = ops.logical_and(no_cache, in_previous[None])
    elif use_cache:
        hidden = np.zeros((1, 1, visible), bool)
    else:
        hidden = in_previous[None]
    previous_logits = ops.where(hidden, MASKED_LOGIT, 0.0)
    previous_logits = ops.reshape(previous_logits, (-1, ops.shape(hidden)[1], 1, 1, visible))

    logits = grouped_heads_einsum("bnqhd,bnkhd->bnhqk", window_queries, window_keys)
    logits = add_over_leading_axes(ops.cast(logits, "float32"), static_logits)
    logits = logits + ops.cast(previous_logits, "float32")

    if memory_keys is None:
        (weights,), total = _unnormalized_softmax([logits])
        outputs = grouped_heads_einsum(
            "bnhqk,bnkhd->bnqhd", ops.cast(weights, values.dtype), window_values
        )
        return _normalize(outputs, total, batch, seq_len, values.dtype)

    # Every window also sees the memory: one softmax over [memory, window].
    memory_logits = grouped_heads_einsum(
        "bnqhd,bmhd->bnhqm", window_queries, ops.cast(memory_keys, queries.dtype)
    )
    memory_logits = ops.cast(memory_logits, "float32")
    if memory_valid is not None:
        valid = ops.reshape(ops.cast(memory_valid, "bool"), (batch, 1, 1, 1, -1))
        memory_logits = memory_logits + ops.where(valid, 0.0, MASKED_LOGIT)
    (memory_weights, weights), total = _unnormalized_softmax([memory_logits, logits])
    outputs = grouped_heads_einsum(
        "bnhqk,bnkhd->bnqhd", ops.cast(weights, values.dtype), window_values
    )
    outputs = outputs + grouped_heads_einsum(
        "bnhqm,bmhd->bnqhd",
        ops.cast(memory_weights, values.dtype),
        ops.cast(memory_values, values.dtype),
    )
    return _normalize(outputs, total, batch, seq_len, values.dtype)


def window_step_attention(
    query,
    keys,
    values,
    position,
    *,
    window_length,
    previous_valid,
    position_bias=None,
    logit_scale=None,
    include_self=False,
    memory_keys=None,
    memory_values=None,
    memory_valid=None,
):
    """`sliding_window_attention` for one query: a decoding step's attention.

    The query is the token at `position` of the current window; `keys` and
    `values` hold `[previous window, current window]` (`2W` entries, the
    current window's filled up to the query). It sees what the same token
    sees in `sliding_window_attention`: the `W` tokens before it (or itself
    and `W - 1` before it), the previous window only where
    `previous_valid`, the memory entries in the same softmax, and the
    position bias row of its place in the window.

    Args:
        query: float tensor `(batch, 1, heads, head_dim)`.
        keys: float tensor `(batch, 2W, key_heads, head_dim)`, `key_heads`
            dividing `heads` (see `sliding_window_attention`).
        values: float tensor like `keys`.
        position: int32 scalar tensor in `[0, W)`: the query's place in its window.
        window_length: int. `W`.
        previous_valid: bool tensor `(batch,)`: rows that see the previous window.
        position_bias: float tensor `(heads, 2W)`: the query's row of the
            `(heads, W, 2W)` table `sliding_window_attention` takes, or None.
        logit_scale: float tensor `(heads,)` or None.
        include_self: bool. See `window_mask`.
        memory_keys: float tensor `(batch, M, key_heads, head_dim)` or None.
        memory_values: float tensor like `memory_keys`, or None.
        memory_valid: bool tensor `(batch, M)` or None.

    Returns:
        A tensor `(batch, 1, heads, head_dim)` in the dtype of `values`.
    """
    position = ops.cast(position, "int32")
    query = ops.convert_to_tensor(query)
    key_positions = np.arange(-window_length, window_length)
    distance = ops.convert_to_tensor(key_positions, "int32") - position
    if include_self:
        allowed = ops.logical_and(distance <= 0, distance > -window_length)
    else:
        allowed = ops.logical_and(distance < 0, distance >= -window_length)
    hidden = ops.logical_and(
        ops.logical_not(ops.cast(previous_valid, "bool"))[:, None], key_positions[None] < 0
    )
    allowed = ops.logical_and(allowed[None], ops.logical_not(hidden))  # (batch, 2W)
    heads = query.shape[2]
    if logit_scale is not None:
        scale = ops.reshape(ops.cast(logit_scale, "float32"), (1, 1, heads, 1))
        query = query * ops.cast(scale, query.dtype)
    logits = grouped_heads_einsum("bqhd,bkhd->bhqk", query, ops.cast(keys, query.dtype), ops.einsum)
    logits = ops.cast(logits, "float32")
    if position_bias is not None:
        row = ops.reshape(ops.cast(position_bias, "float32"), (1, heads, 1, -1))
        if logit_scale is not None:
            row = row * ops.reshape(scale, (1, heads, 1, 1))
        logits = logits + row
    logits = logits + ops.where(allowed, 0.0, MASKED_LOGIT)[:, None, None, :]
    parts = [logits]
    if memory_keys is not None:
        memory_logits = grouped_heads_einsum(
            "bqhd,bmhd->bhqm", query, ops.cast(memory_keys, query.dtype), ops.einsum
        )
        memory_logits = ops.cast(memory_logits, "float32")
        if memory_valid is not None:
            valid = ops.cast(memory_valid, "bool")[:, None, None, :]
            memory_logits = memory_logits + ops.where(valid, 0.0, MASKED_LOGIT)
        parts = [memory_logits, logits]
    weights, total = _unnormalized_softmax(parts)
    outputs = grouped_heads_einsum(
        "bhqk,bkhd->bqhd", weights[-1], ops.cast(values, "float32"), ops.einsum
    )
    if memory_keys is not None:
        outputs = outputs + grouped_heads_einsum(
            "bhqm,bmhd->bqhd", weights[0], ops.cast(memory_values, "float32"), ops.einsum
        )
    total = ops.transpose(total, (0, 2, 1, 3))
    return ops.cast(outputs / ops.where(total > 0.0, total, 1.0), values.dtype)


def _unnormalized_softmax(parts):
    """One softmax over several parts of masked logits, left unnormalised.

    Masked logits are `MASKED_LOGIT` or below. Returns each part's
    `exp(logit - row max)` (exactly zero where masked) and the rows' total.
    Dividing the attention output by the total afterwards is the same
    softmax, with `head_dim` divisions per query instead of one per key (on
    2 CPU cores the division over a d512 layer's `(q, 2W)` weights was the
    slowest elementwise pass of its forward), and no concatenation of the
    parts.
    """
    row_max = ops.max(parts[0], axis=-1, keepdims=True)
    for part in parts[1:]:
        row_max = ops.maximum(row_max, ops.max(part, axis=-1, keepdims=True))
    # A fully masked row keeps a zero shift, so its masked entries underflow
    # to exactly zero weight, as in `safe_softmax`.
    row_max = ops.stop_gradient(ops.where(row_max > 0.5 * MASKED_LOGIT, row_max, 0.0))
    weights = [ops.exp(part - row_max) for part in parts]
    total = ops.sum(weights[0], axis=-1, keepdims=True)
    for part in weights[1:]:
        total = total + ops.sum(part, axis=-1, keepdims=True)
    return weights, total


def _normalize(outputs, total, batch, seq_len, dtype):
    """`(b, n, q, h, d)` outputs over their `(b, n, h, q, 1)` softmax totals."""
    total = ops.transpose(total, (0, 1, 3, 2, 4))
    outputs = ops.cast(outputs, "float32") / ops.where(total > 0.0, total, 1.0)
    heads, dim = outputs.shape[3], outputs.shape[4]
    return ops.cast(ops.reshape(outputs, (batch, seq_len, heads, dim)), dtype)


def dense_attention(queries, keys, values, scale=None, mask=None, bias=None):
    """Softmax attention of every query over every key, softmax in float32.

    Used where no sliding window applies: the recurrent state attending to
    itself and to a block of tokens, tokens attending to the state, and
    Melodi's window of context and summary tokens (with its position bias).

    The two products run in the operands' dtype, the wider where they
    differ: bfloat16 operands (a `mixed_bfloat16` layer's) are multiplied
    with float32 accumulation where that is faster (`accumulating_einsum`),
    as in `sliding_window_attention`. The logits are that product in the
    operands' dtype, widened to float32; bias, mask and softmax are float32
    whatever the operands.

    Args:
        queries: float tensor `(batch, q, heads, head_dim)`.
        keys: float tensor `(batch, k, key_heads, head_dim)`, `key_heads`
            dividing `heads` (see `sliding_window_attention`).
        values: float tensor `(batch, k, key_heads, head_dim)`.
        scale: float tensor `(heads,)` multiplying the logits, or None.
        mask: bool tensor broadcastable to `(batch, heads, q, k)`, True where
            allowed, or None.
        bias: float tensor `(heads, q, k)` added to the logits after the
            scale, or None.

    Returns:
        A float32 tensor `(batch, q, heads, head_dim)`.
    """
    queries, keys, values = (ops.convert_to_tensor(t) for t in (queries, keys, values))
    dtype = keras.backend.result_type(queries.dtype, keys.dtype, values.dtype)
    queries, keys, values = (ops.cast(t, dtype) for t in (queries, keys, values))
    if scale is not None:
        # On the queries, not the `(q, k)` logits (see `sliding_window_attention`).
        queries = queries * ops.reshape(ops.cast(scale, dtype), (1, 1, -1, 1))
    logits = ops.cast(grouped_heads_einsum("bqhd,bkhd->bhqk", queries, keys), "float32")
    if bias is not None:
        logits = add_over_leading_axes(logits, ops.cast(bias, "float32"))
    if mask is not None:
        logits = logits + ops.where(mask, 0.0, MASKED_LOGIT)
    (weights,), total = _unnormalized_softmax([logits])
    outputs = grouped_heads_einsum("bhqk,bkhd->bqhd", ops.cast(weights, dtype), values)
    total = ops.transpose(total, (0, 2, 1, 3))
    return ops.cast(outputs, "float32") / ops.where(total > 0.0, total, 1.0)
