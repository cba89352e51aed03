"""Plain numpy reference of the Transformer-XL block, written independently of
the library: dense attention over concat(cache, segment) with an absolute-
position band mask, no windows."""

import math

import numpy as np
from scipy.special import erf


def t5_bucket(distance, num_buckets=32, max_distance=128):
    """Unidirectional T5 bucket of a non-negative distance, one int at a time."""
    exact = num_buckets // 2
    if distance < exact:
        return distance
    bucket = exact + int(
        math.log(distance / exact + np.finfo(np.float32).eps)
        / math.log(max_distance / exact)
        * (num_buckets - exact)
    )
    return min(bucket, num_buckets - 1)


def rms_norm(x, scale, eps=1e-6):
    return x / np.sqrt(np.mean(x**2, axis=-1, keepdims=True) + eps) * scale


def l2_normalize(x, eps=1e-6):
    return x / np.sqrt(np.sum(x**2, axis=-1, keepdims=True) + eps)


def gelu(x):
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def xl_attention(
    x,
    weights,
    num_heads,
    head_dim,
    window,
    cache=None,
    include_self=False,
    normalize_keys=True,
    use_position_bias=True,
    memory=None,
    rotary=None,
    rotary_base=10000.0,
):
    """Reference attention. `cache` is (keys, values) of shape (B, W, H, D) or None;
    `memory` (keys, values) of shape (B, M, H, D) or None is seen by every query,
    without position bias.

    `weights`: dict with `qkv` (d, 3HD), `out` (HD, d), `bias_table` (H, 32),
    `scale` (H,).
    """
    b, s, _ = x.shape
    qkv = (x @ weights["qkv"]).reshape(b, s, 3, num_heads, head_dim)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    if normalize_keys:
        q, k = l2_normalize(q), l2_normalize(k)
    else:
        q = q / math.sqrt(head_dim)
    new_cache = (k[:, -window:], v[:, -window:])
    if rotary:
        # Absolute positions from the first token (cache tokens before it).
        first_position = 0 if cache is None else cache[0].shape[1]
        sign = -1.0 if rotary == "reversed" else 1.0
        q = rotate(q, sign * (first_position + np.arange(s)), rotary_base)
        k = rotate(k, sign * (first_position + np.arange(s)), rotary_base)
        if cache is not None:
            cache = (rotate(cache[0], sign * np.arange(first_position), rotary_base), cache[1])
    if cache is not None:
        keys = np.concatenate([cache[0], k], axis=1)
        values = np.concatenate([cache[1], v], axis=1)
        first = cache[0].shape[1]
    else:
        keys, values, first = k, v, 0
    out = np.zeros((b, s, num_heads, head_dim))
    for i in range(s):
        qpos = first + i
        kpos = np.arange(keys.shape[1])
        dist = qpos - kpos
        if include_self:
            allowed = (dist >= 0) & (dist < window)
        else:
            allowed = (dist > 0) & (dist <= window)
        logits = np.einsum("bhd,bkhd->bhk", q[:, i], keys)
        if use_position_bias:
            buckets = np.array([t5_bucket(max(int(n), 0)) for n in dist])
            logits = logits + weights["bias_table"][:, buckets][None]
        logits = np.where(allowed[None, None], logits, -np.inf)
        step_values = values
        if memory is not None:
            logits = np.concatenate([np.einsum("bhd,bmhd->bhm", q[:, i], memory[0]), logits], -1)
            step_values = np.concatenate([memory[1], values], axis=1)
        elif not allowed.any():
            continue
        if normalize_keys:
            logits = logits * np.abs(weights["scale"])[None, :, None]
        p = np.exp(logits - logits.max(-1, keepdims=True))
        p = p / p.sum(-1, keepdims=True)
        out[:, i] = np.einsum("bhk,bkhd->bhd", p, step_values)
    return out.reshape(b, s, -1) @ weights["out"], new_cache


def rotate(x, positions, base):
    """RoPE over the two halves of the last axis, written out with numpy."""
    half = x.shape[-1] // 2
    angles = np.asarray(positions, np.float64)[:, None] * base ** (-np.arange(half) / half)
    cos, sin = np.cos(angles)[None, :, None], np.sin(angles)[None, :, None]
    first, second = x[..., :half], x[..., half:]
    return np.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)


def transformer_block(x, weights, **attention_args):
    """Reference pre-norm block; returns (y, new_cache)."""
    attended, cache = xl_attention(rms_norm(x, weights["norm1"]), weights, **attention_args)
    h = x + attended
    y = h + gelu(rms_norm(h, weights["norm2"]) @ weights["ffn_in"]) @ weights["ffn_out"]
    return y, cache
