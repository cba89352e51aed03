"""SimCTG's token-level contrastive loss (Su et al., 2022), padding masked."""

from keras import ops

from keras_memory.ops.normalization import l2_normalize


def simctg_contrastive_loss(hidden_states, mask=None, margin=0.5):
    """Mean of `max(0, margin - s(h_i, h_i) + s(h_i, h_j))` over token pairs `i != j`.

    `s` is the cosine similarity of last-layer hidden states, so
    `s(h_i, h_i) = 1`: the loss pushes every two tokens of a sequence at
    least `margin` apart in direction, which keeps the representations
    isotropic (the LSW Transformer trains with it next to cross-entropy).
    Pairs with a padded token are left out; each row's mean is over its own
    valid pairs, and rows are averaged by their number of valid pairs.

    Args:
        hidden_states: float tensor `(batch, length, hidden_dim)`.
        mask: bool tensor `(batch, length)`, True at real tokens, or None.
        margin: float. `rho`; 0.5 in SimCTG and LSWT.

    Returns:
        A float32 scalar.

    References:
        - [Su et al., 2022](https://arxiv.org/abs/2202.06417)
    """
    if len(hidden_states.shape) != 3:
        raise ValueError(
            "`hidden_states` must have shape (batch, length, hidden_dim); got "
            f"{tuple(hidden_states.shape)}."
        )
    normed = l2_normalize(ops.cast(hidden_states, "float32"))
    similarity = ops.einsum("bid,bjd->bij", normed, normed)
    length = hidden_states.shape[1]
    self_similarity = ops.expand_dims(ops.diagonal(similarity, axis1=1, axis2=2), -1)
    hinge = ops.relu(margin - self_similarity + similarity)
    # Broadcast to the batch: the count of pairs below must cover every row.
    pairs = ops.logical_and(
        ops.logical_not(ops.eye(length, dtype="bool"))[None], ops.ones_like(hinge, "bool")
    )
    if mask is not None:
        valid = ops.cast(mask, "bool")
        pairs = ops.logical_and(pairs, ops.logical_and(valid[:, :, None], valid[:, None, :]))
    pairs = ops.cast(pairs, "float32")
    return ops.sum(hinge * pairs) / ops.maximum(ops.sum(pairs), 1.0)
