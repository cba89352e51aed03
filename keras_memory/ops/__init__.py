"""The functional core: pure `keras.ops` functions the layers compose.

The functions are loaded on first use (a module `__getattr__`): importing
`keras_memory.ops` (or a Keras-free module under it, such as
`keras_memory.ops.retrieval_methods`) does not import Keras, so the command
line can list the retrieval methods before the backend is chosen.
"""

from typing import TYPE_CHECKING

from keras_memory.lazy_names import lazy_names
from keras_memory.ops.retrieval_methods import RETRIEVAL_METHODS

if TYPE_CHECKING:  # for type checkers and the API docs (griffe reads imports)
    from keras_memory.ops.attention import safe_softmax, sliding_window_attention
    from keras_memory.ops.knn import (
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
    from keras_memory.ops.position_bias import relative_positions, t5_relative_position_buckets
    from keras_memory.ops.query_groups import (
        fold_query_groups,
        grouped_heads_einsum,
        unfold_query_groups,
    )
    from keras_memory.ops.rotary import rotary_base, rotate

# Each public function and the module it lives in, imported on first use.
_LAZY = {
    "approx_top_k": "keras_memory.ops.knn",
    "bucketed_top_k": "keras_memory.ops.knn",
    "exact_top_k": "keras_memory.ops.knn",
    "fold_query_groups": "keras_memory.ops.query_groups",
    "gather_memory": "keras_memory.ops.knn",
    "grouped_heads_einsum": "keras_memory.ops.query_groups",
    "l2_normalize": "keras_memory.ops.normalization",
    "relative_positions": "keras_memory.ops.position_bias",
    "retrieve_top_k": "keras_memory.ops.knn",
    "rotary_base": "keras_memory.ops.rotary",
    "rotate": "keras_memory.ops.rotary",
    "safe_softmax": "keras_memory.ops.attention",
    "scann_top_k": "keras_memory.ops.knn",
    "sliding_window_attention": "keras_memory.ops.attention",
    "summary_causal_mask": "keras_memory.ops.masks",
    "t5_relative_position_buckets": "keras_memory.ops.position_bias",
    "two_stage_top_k": "keras_memory.ops.knn",
    "unfold_query_groups": "keras_memory.ops.query_groups",
    "window_mask": "keras_memory.ops.masks",
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY)


__all__ = [
    "RETRIEVAL_METHODS",
    "approx_top_k",
    "bucketed_top_k",
    "retrieve_top_k",
    "scann_top_k",
    "exact_top_k",
    "gather_memory",
    "grouped_heads_einsum",
    "fold_query_groups",
    "unfold_query_groups",
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
