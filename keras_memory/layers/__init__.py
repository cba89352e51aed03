"""Keras layers, one class per module."""

from keras_memory.layers.accumulating_dense import AccumulatingDense
from keras_memory.layers.block_recurrent_attention import BlockRecurrentAttention
from keras_memory.layers.dense_kv_attention import DenseKVAttention
from keras_memory.layers.feed_forward import FeedForward
from keras_memory.layers.knn_attention import KNNAttention
from keras_memory.layers.melodi_layer import MelodiLayer
from keras_memory.layers.memory_layer import MemoryLayer
from keras_memory.layers.relative_position_bias import RelativePositionBias
from keras_memory.layers.token_mixing import TokenMixing
from keras_memory.layers.transformer_block import TransformerBlock
from keras_memory.layers.xl_attention import XLAttention

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
