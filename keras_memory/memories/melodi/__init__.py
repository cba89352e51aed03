"""Melodi: the `melodi` kind (short-term memory in every layer, long-term in one).

`MelodiLayer` compresses each window into summary tokens by token mixing;
`keras_memory.models.MelodiLM` feeds the learned summary tokens in.
"""

from keras_memory.memories.melodi.melodi_layer import MelodiLayer

__all__ = ["MelodiLayer"]
