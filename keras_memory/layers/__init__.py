"""Keras layers: the pieces every mechanism shares, and every public layer.

The shared pieces live here (`MemoryLayer`, `TransformerBlock`,
`FeedForward`, `RelativePositionBias`, `TokenMixing`, `AccumulatingDense`);
each mechanism's own layers live in its folder under `keras_memory.memories`
and are reachable here too, so `keras_memory.layers.XLAttention` keeps working.
"""

from keras_memory.layers.accumulating_dense import AccumulatingDense
from keras_memory.layers.feed_forward import FeedForward
from keras_memory.layers.memory_layer import MemoryLayer
from keras_memory.layers.relative_position_bias import RelativePositionBias
from keras_memory.layers.token_mixing import TokenMixing
from keras_memory.layers.transformer_block import TransformerBlock
from keras_memory.lazy_names import lazy_names

# Each mechanism's layers, at the names they had before they got their homes.
# Resolved on first use: the mechanisms import the shared pieces above, so an
# import here would be a cycle.
_MECHANISM_LAYERS = {
    "BlockRecurrentAttention": "keras_memory.memories.block_recurrent.block_recurrent_attention",
    "DenseKVAttention": "keras_memory.memories.memorizing.dense_kv_attention",
    "KNNAttention": "keras_memory.memories.memorizing.knn_attention",
    "MelodiLayer": "keras_memory.memories.melodi.melodi_layer",
    "XLAttention": "keras_memory.memories.transformer_xl.xl_attention",
}


__getattr__, __dir__ = lazy_names(__name__, _MECHANISM_LAYERS)


__all__ = [
    "AccumulatingDense",
    "BlockRecurrentAttention",
    "DenseKVAttention",
    "FeedForward",
    "KNNAttention",
    "MelodiLayer",
    "MemoryLayer",
    "RelativePositionBias",
    "TokenMixing",
    "TransformerBlock",
    "XLAttention",
]
