"""The only place that touches jax, tensorflow, torch or scann directly.

Everything else in keras-memory is `keras.ops`; what a backend offers beyond
it (approximate top-k kernels, host calls for ScaNN) lives here.
"""

from keras_memory.backend.accumulating_matmul import accumulating_matmul
from keras_memory.backend.broadcast_add import add_over_leading_axes
from keras_memory.backend.device import device_memory_bytes, device_name, wait_for_variables
from keras_memory.backend.retrieval import approx_max_k, scann_search, top_k
from keras_memory.backend.slice_map import map_over_leading_axis

__all__ = [
    "accumulating_matmul",
    "add_over_leading_axes",
    "approx_max_k",
    "device_memory_bytes",
    "device_name",
    "map_over_leading_axis",
    "scann_search",
    "top_k",
    "wait_for_variables",
]
