"""Exact k-nearest-neighbour retrieval from a per-(row, head) memory, on device."""

from keras import ops

from keras_memory.backend.conditionals import conditionals_are_free
from keras_memory.backend.retrieval import top_k
from keras_memory.backend.slice_map import map_over_leading_axis, slicing_is_faster
from keras_memory.ops.attention import MASKED_LOGIT
from keras_memory.ops.retrieval_methods import RETRIEVAL_METHODS

# Entries per block of the two-stage top-k: small blocks make the first
# top-k (over chunk / BLOCK_SIZE block maxima) and the second (over
# k * BLOCK_SIZE candidates) both short (32 was fastest on CPU at 2k-32k).
BLOCK_SIZE = 32


def exact_top_k(queries, memory_keys, memory_valid, k, chunk_size=8192):
    """The `k` memory entries with the largest `q . key`, per query and head.

    Scores are computed in the memory's precision (float32 under a mixed
    policy: bfloat16 queries are cast up, not the memory down, which would
    round near-equal scores together and cost a pass over the memory), chunk
    by chunk over the memory with a running top-k merge, so the score tensor
    never exceeds `(batch, heads, queries, chunk_size)`. Inside a chunk the
    top-k is taken in two exact stages (`two_stage_top_k`): the `k` blocks of
    `BLOCK_SIZE` entries with the highest maxima, then the top `k` of those
    blocks' entries, which sorts far fewer scores than one top-k over the
    chunk.

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

    def search(queries, memory_keys, memory_valid):
        return _chunked_top_k(queries, memory_keys, memory_valid, k, chunk_size, two_stage_top_k)

    if not slicing_is_faster():
        # Batched: merging the (row, head) axes below would make a mesh
        # gather the memory sharded along rows and heads onto every device.
        return search(queries, memory_keys, memory_valid)
    _, length, heads, dim = queries.shape
    memory_size = memory_keys.shape[1]
    # One (row, head) pair per slice, as a batch of rows with one head each,
    # searched pair by pair (on JAX's CPU, see docs/performance.md).
    pair_queries = ops.reshape(ops.transpose(queries, (0, 2, 1, 3)), (-1, length, 1, dim))
    pair_keys = ops.reshape(ops.transpose(memory_keys, (0, 2, 1, 3)), (-1, memory_size, 1, dim))
    pair_valid = ops.repeat(ops.cast(memory_valid, "bool"), heads, axis=0)
    scores, indices = map_over_leading_axis(search, pair_queries, pair_keys, pair_valid)
    return (
        ops.reshape(scores, (-1, heads, length, k)),
        ops.reshape(indices, (-1, heads, length, k)),
    )


def two_stage_top_k(scores, k, block_size=BLOCK_SIZE):
    """Exact top-k over the last axis, through the `k` best blocks.

    A block holding one of the true top `k` scores has a maximum at least the
    `k`-th best score, and at most `k` blocks hold one, so the `k` blocks
    with the highest maxima hold them all (ties aside, which may swap equal
    scores). Falls back to one top-k when the axis is not a multiple of
    `block_size` or has fewer than `k` blocks.

    Args:
        scores: float tensor `(..., n)`.
        k: int. `<= n`.
        block_size: int. Entries per block.

    Returns:
        `(values, int32 indices)`, `(..., k)`, best first.
    """
    n = scores.shape[-1]
    if n % block_size or n // block_size <= k:
        return top_k(scores, k)
    leading = ops.shape(scores)[:-1]  # dynamic where a traced batch is None
    blocks = ops.reshape(scores, (*leading, n // block_size, block_size))
    _, best_blocks = top_k(ops.max(blocks, axis=-1), k)  # (..., k)
    candidates = ops.take_along_axis(blocks, ops.expand_dims(best_blocks, -1), axis=-2)
    values, order = top_k(ops.reshape(candidates, (*leading, k * block_size)), k)
    block = ops.take_along_axis(best_blocks, order // block_size, axis=-1)
    return values, block * block_size + order % block_size


def gather_memory(memory, indices):
    """Entries `(batch, heads, queries, k, dim)` of a `(batch, memory, heads, dim)` memory."""
    batch, heads, num_queries, k = indices.shape
    per_head = ops.transpose(memory, (0, 2, 1, 3))  # (batch, heads, memory, dim)
    flat = ops.reshape(indices, (batch, heads, num_queries * k, 1))
    gathered = ops.take_along_axis(per_head, flat, axis=2)
    return ops.reshape(gathered, (batch, heads, num_queries, k, memory.shape[-1]))


def bucketed_top_k(queries, memory_keys, memory_valid, k, chunk_size=8192):
    """meliad's approximate top-k: the best entry of each of `k` strided buckets.

    Bucket `j` holds the memory entries whose index is `j` modulo `k`; each
    query gets the highest-scoring entry of every bucket. It costs one
    max/argmax pass instead of a sort, and finds the true top-k whenever no
    two of them share a bucket. `memory` must be a multiple of `k`.

    Args and returns: as `exact_top_k` (results are not sorted).
    """
    memory_size = memory_keys.shape[1]
    if memory_size % k:
        raise ValueError(
            f"retrieval='bucketed' needs a memory size ({memory_size}) that is a multiple "
            f"of `k` ({k})."
        )
    chunk_size = max(k, chunk_size // k * k)
    best_scores, best_indices = None, None
    for start in range(0, memory_size, chunk_size):
        stop = min(start + chunk_size, memory_size)
        scores = _chunk_scores(queries, memory_keys, memory_valid, start, stop)
        shape = ops.shape(scores)
        strided = ops.reshape(scores, (*shape[:-1], (stop - start) // k, k))
        top_scores = ops.max(strided, axis=-2)
        top_indices = ops.cast(ops.argmax(strided, axis=-2), "int32") * k + start
        top_indices = top_indices + ops.arange(k, dtype="int32")
        if best_scores is None:
            best_scores, best_indices = top_scores, top_indices
            continue
        better = top_scores > best_scores
        best_scores = ops.where(better, top_scores, best_scores)
        best_indices = ops.where(better, top_indices, best_indices)
    return best_scores, best_indices


def approx_top_k(queries, memory_keys, memory_valid, k, chunk_size=8192):
    """Top-k by the backend's approximate kernel per chunk, merged exactly.

    `jax.lax.approx_max_k` / `tf.math.approx_max_k` (see
    `keras_memory.backend.approx_max_k`); exact on backends without one.

    Args and returns: as `exact_top_k`.
    """
    from keras_memory.backend import approx_max_k

    return _chunked_top_k(queries, memory_keys, memory_valid, k, chunk_size, approx_max_k)


def scann_top_k(queries, memory_keys, memory_valid, k, index=None):
    """Top-k found by ScaNN on the host, scored exactly on device.

    See `keras_memory.backend.scann_search`. Args and returns: as
    `exact_top_k` (missing neighbours score `MASKED_LOGIT`); `index` is the
    layer's `ScannMemoryIndex` (None builds fresh indexes every call).
    """
    from keras_memory.backend import scann_search

    queries = ops.convert_to_tensor(queries)
    search_queries = ops.stop_gradient(ops.cast(queries, memory_keys.dtype))
    ids = ops.stop_gradient(
        scann_search(search_queries, memory_keys, ops.cast(memory_valid, "bool"), k, index)
    )
    found = ids >= 0
    indices = ops.where(found, ids, 0)
    keys = gather_memory(memory_keys, indices)  # (batch, heads, queries, k, dim)
    scores = ops.einsum("bqhd,bhqkd->bhqk", ops.cast(queries, keys.dtype), keys)
    return ops.where(found, ops.cast(scores, "float32"), MASKED_LOGIT), indices


def retrieve_top_k(
    method, queries, memory_keys, memory_valid, k, chunk_size=8192, scann_index=None
):
    """Dispatches to `exact_top_k`, `bucketed_top_k`, `approx_top_k` or `scann_top_k`."""
    if method == "exact":
        return exact_top_k(queries, memory_keys, memory_valid, k, chunk_size)
    if method == "bucketed":
        return bucketed_top_k(queries, memory_keys, memory_valid, k, chunk_size)
    if method == "approx":
        return approx_top_k(queries, memory_keys, memory_valid, k, chunk_size)
    if method == "scann":
        return scann_top_k(queries, memory_keys, memory_valid, k, scann_index)
    raise ValueError(f"`retrieval` must be one of {RETRIEVAL_METHODS}; got {method!r}.")


def _chunk_scores(queries, memory_keys, memory_valid, start, stop):
    """float32 `(batch, heads, queries, stop - start)`; invalid entries `MASKED_LOGIT`.

    Validity rides in the product: the queries get a constant 1 feature, a
    valid key a 0 there and an invalid key (zeroed) `MASKED_LOGIT`, so the
    product writes the masked scores itself: masking them afterwards was one
    more pass over the largest tensor of the search. Valid scores are
    unchanged (their extra term is an exact zero).
    """
    queries = ops.cast(queries, memory_keys.dtype)
    keys = memory_keys[:, start:stop]
    valid = ops.expand_dims(ops.expand_dims(memory_valid[:, start:stop], -1), -1)
    marker = ops.where(valid, 0.0, MASKED_LOGIT)
    marker = ops.cast(ops.broadcast_to(marker, (*ops.shape(keys)[:3], 1)), keys.dtype)
    keys = ops.concatenate([ops.where(valid, keys, ops.zeros_like(keys)), marker], axis=-1)
    ones = ops.ones_like(queries[..., :1])
    scores = ops.einsum("bqhd,bmhd->bhqm", ops.concatenate([queries, ones], axis=-1), keys)
    return ops.cast(scores, "float32")


def _chunked_top_k(queries, memory_keys, memory_valid, k, chunk_size, top_k_fn):
    memory_size = memory_keys.shape[1]
    if k > memory_size:
        raise ValueError(f"`k` ({k}) must be <= the memory size ({memory_size}).")
    best_scores, best_indices = None, None
    for start in range(0, memory_size, chunk_size):
        stop = min(start + chunk_size, memory_size)
        top_scores, top_indices = _top_k_of_chunk(
            queries, memory_keys, memory_valid, start, stop, min(k, stop - start), top_k_fn
        )
        if best_scores is None:
            best_scores, best_indices = top_scores, top_indices
            continue
        merged_scores = ops.concatenate([best_scores, top_scores], axis=-1)
        merged_indices = ops.concatenate([best_indices, top_indices], axis=-1)
        best_scores, order = top_k(merged_scores, k)
        best_indices = ops.take_along_axis(merged_indices, order, axis=-1)
    return best_scores, best_indices


def _top_k_of_chunk(queries, memory_keys, memory_valid, start, stop, k, top_k_fn):
    """The top `k` of entries `start:stop`: `(float32 scores, int32 indices)`.

    A chunk holding no stored entry is not scored where a device conditional
    is free (`conditionals_are_free`: CPUs and TPUs): every one of its
    entries would score `MASKED_LOGIT`, so its top `k` are `MASKED_LOGIT`, here
    at its first `k` indices. The search's callers read only scores above
    `MASKED_LOGIT / 2`, so what they read is the same; the unread indices may
    differ from a scored chunk's (where a TPU's product rounds the masked
    scores, or a top-k orders ties otherwise), and stay in range because
    they are gathered. A row's memory is empty after each document start
    until it is written again: searched pair by pair (JAX's CPU) the test is
    that row's, so a reset row skips the chunks it has not refilled; batched,
    a chunk is skipped only when no row stores anything in it.
    """

    def search():
        scores = _chunk_scores(queries, memory_keys, memory_valid, start, stop)
        top_scores, top_indices = top_k_fn(scores, k)
        return ops.cast(top_scores, "float32"), ops.cast(top_indices, "int32") + start

    def nothing_stored():
        # Static sizes where either operand has them, as the product's result
        # has: a traced model's queries may have a free batch axis while its
        # state's memory has a fixed one, and the branches' shapes merge.
        batch = memory_keys.shape[0] or queries.shape[0] or ops.shape(queries)[0]
        length = queries.shape[1] or ops.shape(queries)[1]
        heads = memory_keys.shape[2] or queries.shape[2] or ops.shape(queries)[2]
        shape = (batch, heads, length, k)
        indices = ops.broadcast_to(ops.arange(start, start + k, dtype="int32"), shape)
        return ops.full(shape, MASKED_LOGIT, dtype="float32"), indices

    if not conditionals_are_free():
        return search()
    stored = ops.any(ops.cast(memory_valid[:, start:stop], "bool"))
    return ops.cond(stored, search, nothing_stored)
