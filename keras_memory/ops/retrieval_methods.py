"""The names of the kNN retrieval methods, free of Keras imports.

`keras_memory.ops.knn.retrieve_top_k` dispatches on them; the `memorizing`
kind's options list them as choices, and the command line reads those
before Keras (and so its backend) is imported, so they live here.
"""

# `exact_top_k`, `bucketed_top_k`, `approx_top_k` and `scann_top_k` of `keras_memory.ops.knn`.
RETRIEVAL_METHODS = ("exact", "bucketed", "approx", "scann")

# Where a kNN memory's entries live: a ring in the device state, or host RAM.
MEMORY_PLACEMENTS = ("device", "host")
