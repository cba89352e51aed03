"""Backend-specific kernels: the only code that imports jax or scann.

The layers, models and ops are `keras.ops`; what a backend offers beyond it
(approximate top-k kernels, host calls for ScaNN) lives here. Outside this
package only `keras_memory.data` (tensorflow for the keras-hub tokenizers and
the `tf.data` helpers, tensorflow_datasets for PG-19) and `bench.peers`
(torch, to time the PyTorch reference ports) import a backend library.
"""

from keras_memory.backend.accumulating_einsum import accumulating_einsum
from keras_memory.backend.accumulating_matmul import accumulating_matmul
from keras_memory.backend.broadcast_add import add_over_leading_axes
from keras_memory.backend.conditionals import conditionals_are_free
from keras_memory.backend.device import device_memory_bytes, device_name, wait_for_variables
from keras_memory.backend.retrieval import approx_max_k, scann_search, top_k
from keras_memory.backend.slice_map import map_over_leading_axis

__all__ = [
    "accumulating_einsum",
    "accumulating_matmul",
    "add_over_leading_axes",
    "approx_max_k",
    "conditionals_are_free",
    "device_memory_bytes",
    "device_name",
    "map_over_leading_axis",
    "scann_search",
    "top_k",
    "wait_for_variables",
]
