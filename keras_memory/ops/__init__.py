"""The functional core: pure `keras.ops` functions the layers compose."""

from keras_memory.ops.attention import safe_softmax, sliding_window_attention
from keras_memory.ops.knn import (
    RETRIEVAL_METHODS,
    approx_top_k,
    bucketed_top_k,
    exact_top_k,
    gather_memory,
    retrieve_top_k,
    scann_top_k,
    two_stage_top_k,
)
from keras_memory.ops.masks import summary_causal_mask, window_mask
from keras_memory.ops.normalization import l2_normalize
from keras_memory.ops.position_bias import (
    relative_positions,
    t5_relative_position_buckets,
)
from keras_memory.ops.rotary import rotary_base, rotate

__all__ = [
    "RETRIEVAL_METHODS",
    "approx_top_k",
    "bucketed_top_k",
    "retrieve_top_k",
    "scann_top_k",
    "exact_top_k",
    "gather_memory",
    "l2_normalize",
    "relative_positions",
    "safe_softmax",
    "sliding_window_attention",
    "two_stage_top_k",
    "t5_relative_position_buckets",
    "rotary_base",
    "rotate",
    "summary_causal_mask",
    "window_mask",
]
