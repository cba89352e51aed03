"""Melodi: the `melodi` kind (short-term memory in every layer, long-term in one).

`MelodiLayer` compresses each window into summary tokens by token mixing;
`keras_memory.models.MelodiLM` feeds the learned summary tokens in.
"""

from typing import TYPE_CHECKING

from keras_memory.lazy_names import lazy_names

if TYPE_CHECKING:  # for type checkers and the API docs (griffe reads imports)
    from keras_memory.memories.melodi.melodi_layer import MelodiLayer

# The layers are imported on first use (a module `__getattr__`), not here:
# the kind's options (`kind.py`) must import without Keras, and importing them
# runs this `__init__` first.
_LAZY = {
    "MelodiLayer": "keras_memory.memories.melodi.melodi_layer",
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY)


__all__ = ["MelodiLayer"]
