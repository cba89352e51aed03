"""The Memorizing Transformer: the `memorizing` (kNN) and `memorizing_dense` kinds.

`KNNAttention` retrieves the top-k keys of a per-(row, head) ring buffer of
earlier segments and gates the result with its local window;
`DenseKVAttention` attends to the whole memory in one softmax (meliad's
memory2).
"""

from keras_memory.memories.memorizing.dense_kv_attention import DenseKVAttention
from keras_memory.memories.memorizing.knn_attention import KNNAttention

__all__ = ["DenseKVAttention", "KNNAttention"]
