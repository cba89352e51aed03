"""Exact k-nearest-neighbour retrieval from a per-(row, head) memory, on device."""

from keras import ops

from keras_memory.ops.attention import MASKED_LOGIT


def exact_top_k(queries, memory_keys, memory_valid, k, chunk_size=8192):
    """The `k` memory entries with the largest `q . key`, per query and head.

    Scores are computed chunk by chunk over the memory with a running top-k
    merge, so the score tensor never exceeds `(batch, heads, queries,
    chunk_size)`.

    Args:
        queries: float tensor `(batch, queries, heads, dim)`.
        memory_keys: float tensor `(batch, memory, heads, dim)`.
        memory_valid: bool tensor `(batch, memory)`; invalid entries are never
            returned ahead of valid ones and score `MASKED_LOGIT`.
        k: int. Neighbours per query, `<= memory`.
        chunk_size: int. Memory entries scored at a time.

    Returns:
        `(scores, indices)`: float32 `(batch, heads, queries, k)` and int32
        indices into the memory axis, best first.
    """
    memory_size = memory_keys.shape[1]
    if k > memory_size:
        raise ValueError(f"`k` ({k}) must be <= the memory size ({memory_size}).")
    best_scores, best_indices = None, None
    for start in range(0, memory_size, chunk_size):
        stop = min(start + chunk_size, memory_size)
        scores = ops.einsum(
            "bqhd,bmhd->bhqm", queries, ops.cast(memory_keys[:, start:stop], queries.dtype)
        )
        scores = ops.cast(scores, "float32")
        valid = ops.reshape(memory_valid[:, start:stop], (-1, 1, 1, stop - start))
        scores = ops.where(valid, scores, MASKED_LOGIT)
        top_scores, top_indices = ops.top_k(scores, min(k, stop - start))
        top_indices = ops.cast(top_indices, "int32") + start
        if best_scores is None:
            best_scores, best_indices = top_scores, top_indices
            continue
        merged_scores = ops.concatenate([best_scores, top_scores], axis=-1)
        merged_indices = ops.concatenate([best_indices, top_indices], axis=-1)
        best_scores, order = ops.top_k(merged_scores, k)
        best_indices = ops.take_along_axis(merged_indices, order, axis=-1)
    return best_scores, best_indices


def gather_memory(memory, indices):
    """Entries `(batch, heads, queries, k, dim)` of a `(batch, memory, heads, dim)` memory."""
    batch, heads, num_queries, k = indices.shape
    per_head = ops.transpose(memory, (0, 2, 1, 3))  # (batch, heads, memory, dim)
    flat = ops.reshape(indices, (batch, heads, num_queries * k, 1))
    gathered = ops.take_along_axis(per_head, flat, axis=2)
    return ops.reshape(gathered, (batch, heads, num_queries, k, memory.shape[-1]))
