"""Grouped queries: query heads meeting keys of fewer heads, in products and in searches."""

from keras import ops

from keras_memory.backend.accumulating_einsum import accumulating_einsum


def grouped_heads_einsum(equation, a, b, product=None):
    """`product(equation, a, b)` where `b` may have fewer heads than `a` (grouped queries).

    Attention's products all take an operand with the queries' `H` heads
    (queries, logits, weights) and one with the keys' `G` heads (keys,
    values), both on the axis named `h`, and give `H` heads. With `G < H`
    (grouped-query attention: `R = H / G` query heads share each key/value
    head, query head `i` reading key head `i // R`, as `ops.repeat(keys, R,
    axis=heads)` would pair them) the query-side operand's heads are split
    into `(G, R)` and the `R` heads of a group multiply their shared keys in
    one product with `R` times the rows, instead of `R` products of the
    repeated keys. With `G == H` it is `product(equation, a, b)`.

    Args:
        equation: str. An einsum of two operands whose head axis is `h`.
        a: float tensor with `H` heads.
        b: float tensor with `G` heads, `G` dividing `H`.
        product: the einsum to run, e.g. `ops.einsum`; None (the default):
            `accumulating_einsum`, which on JAX's CPU multiplies grouped
            float32 heads as one batched matmul too (faster there).

    Returns:
        The product, with `H` heads on the output's `h` axis.

    Example:
    ```python
    queries = np.random.rand(2, 16, 8, 64).astype("float32")  # 8 query heads
    keys = np.random.rand(2, 16, 1, 64).astype("float32")  # one shared key head
    logits = grouped_heads_einsum("bqhd,bkhd->bhqk", queries, keys)  # (2, 8, 16, 16)
    ```
    """
    inputs, output = equation.split("->")
    a_letters, b_letters = inputs.split(",")
    heads = a.shape[a_letters.index("h")]
    groups = b.shape[b_letters.index("h")]
    if groups == heads:
        return (product or accumulating_einsum)(equation, a, b)
    if heads % groups:
        raise ValueError(f"The keys' heads ({groups}) must divide the queries' heads ({heads}).")
    group, member = [c for c in "gruvwxyz" if c not in equation][:2]
    axis = a_letters.index("h")
    shape = ops.shape(a)
    a = ops.reshape(a, (*shape[:axis], groups, heads // groups, *shape[axis + 1 :]))
    grouped = (
        f"{a_letters.replace('h', group + member)},{b_letters.replace('h', group)}"
        f"->{output.replace('h', group + member)}"
    )
    if product is None:
        result = accumulating_einsum(grouped, a, b, float32_as_matmul=True)
    else:
        result = product(grouped, a, b)
    axis = output.index("h")
    shape = ops.shape(result)
    return ops.reshape(result, (*shape[:axis], heads, *shape[axis + 2 :]))


def fold_query_groups(queries, key_heads):
    """`(batch, S, H, dim)` queries as `(batch, S * R, G, dim)`: R per key head.

    With grouped-query attention `R = H / G` query heads share each of the
    `G` key heads (query head `i` reads key head `i // R`). A kNN search
    takes queries and a memory with the same heads; folded, a group's `R`
    heads are `R` times as many queries of its key head, and each finds its
    own neighbours in that head's memory. `unfold_query_groups` puts the
    results back. With `G == H` the queries come back unchanged.

    Args:
        queries: float tensor `(batch, S, H, dim)`.
        key_heads: int. `G`, dividing `H`.

    Returns:
        A tensor `(batch, S * R, G, dim)`, query `s * R + r` of key head `g`
        being head `g * R + r` of token `s`.

    Example:
    ```python
    folded = fold_query_groups(queries, layer.key_value_heads)
    scores, indices = exact_top_k(folded, memory_keys, memory_valid, k=32)
    scores = unfold_query_groups(scores, layer.num_heads)  # (batch, H, S, k)
    ```
    """
    batch, length, heads, dim = ops.shape(queries)
    per_key = queries.shape[2] // key_heads
    if per_key == 1:
        return queries
    queries = ops.reshape(queries, (batch, length, key_heads, per_key, dim))
    queries = ops.transpose(queries, (0, 1, 3, 2, 4))
    return ops.reshape(queries, (batch, length * per_key, key_heads, dim))


def unfold_query_groups(retrieved, heads):
    """What folded queries retrieved, `(batch, G, S * R, ...)`, as `(batch, H, S, ...)`.

    The inverse of `fold_query_groups` for a search's results: scores,
    indices, found flags `(batch, G, S * R, k)` or entries `(batch, G, S *
    R, k, dim)`.

    Args:
        retrieved: tensor `(batch, G, S * R, ...)`.
        heads: int. `H`, the queries' heads.

    Returns:
        A tensor `(batch, H, S, ...)`.

    Example:
    ```python
    folded = fold_query_groups(queries, 2)  # (batch, S * 4, 2, dim) for 8 heads
    scores, indices = exact_top_k(folded, memory_keys, memory_valid, k=32)
    indices = unfold_query_groups(indices, 8)  # (batch, 8, S, 32)
    ```
    """
    shape = ops.shape(retrieved)
    key_heads = retrieved.shape[1]
    per_key = heads // key_heads
    if per_key == 1:
        return retrieved
    rest = tuple(shape[3:])
    length = retrieved.shape[2] // per_key
    grouped = ops.reshape(retrieved, (shape[0], key_heads, length, per_key, *rest))
    axes = tuple(range(len(retrieved.shape) + 1))
    grouped = ops.transpose(grouped, (0, 1, 3, 2, *axes[4:]))
    return ops.reshape(grouped, (shape[0], heads, length, *rest))
