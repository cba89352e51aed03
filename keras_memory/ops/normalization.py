"""Normalisation functions (RMS norm is `keras.layers.RMSNormalization`)."""

from keras import ops


def l2_normalize(x, epsilon=1e-6):
    """Scales `x` to unit L2 norm over the last axis: `x * rsqrt(sum(x^2) + eps)`."""
    compute_dtype = x.dtype
    x32 = ops.cast(x, "float32")
    sum_sq = ops.sum(ops.square(x32), axis=-1, keepdims=True)
    return ops.cast(x32 * ops.rsqrt(sum_sq + epsilon), compute_dtype)
