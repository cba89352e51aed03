"""Plain data: the models and corpora the benchmarks compare.

Kept apart from the benchmarks' code so that the `keras-memory` command can
list them before Keras (and so its backend) is imported.
"""

# Model name -> `MemoryLM.from_preset` options: the models of the
# Memorizing, Block-Recurrent and Melodi papers' comparisons.
QUALITY_MODELS = {
    "local": {"kind": "local"},
    "xl": {"kind": "xl"},
    "memorizing_2k": {"kind": "memorizing", "memory_size": 2048},
    "memorizing_8k": {"kind": "memorizing", "memory_size": 8192},
    "memorizing_32k": {"kind": "memorizing", "memory_size": 32768},
    "memorizing_2k_no_cache": {"kind": "memorizing", "memory_size": 2048, "use_cache": False},
    "memorizing_8k_no_cache": {"kind": "memorizing", "memory_size": 8192, "use_cache": False},
    "memorizing_32k_no_cache": {"kind": "memorizing", "memory_size": 32768, "use_cache": False},
    # The levers of the small-scale sweep: a position bias in the memory
    # layer's local attention, and with it smeared keys (copying).
    "memorizing_2k_position_bias": {
        "kind": "memorizing",
        "memory_size": 2048,
        "local_position_bias": True,
    },
    "memorizing_2k_copy": {
        "kind": "memorizing",
        "memory_size": 2048,
        "local_position_bias": True,
        "smear_keys": True,
    },
    "block_recurrent_fixed_skip": {"kind": "block_recurrent", "gate": "fixed", "variant": "skip"},
    "block_recurrent_lstm_skip": {"kind": "block_recurrent", "gate": "lstm", "variant": "skip"},
    "melodi": {"kind": "melodi"},
}

# The model of `QUALITY_MODELS` every other is compared with (its loss
# differences, its line in the figures).
QUALITY_BASELINE = "local"

# Names of `keras_memory.bench.quality.CORPORA`: the embedded stdlib sources
# (one document per package) and the King James Bible (one per book).
QUALITY_CORPORA = ("code", "kjv")

# Model name -> one-layer `MemoryLM.from_preset("tiny", ...)` options for
# `keras-memory bench recall` (window 16): memories sized to reach 512
# tokens back (the kNN memory holds 512 entries; Melodi's long-term memory
# gains 4 tokens a window and holds 128, 32 windows), so their cliffs show
# inside the 1,024-token evaluation documents.
RECALL_MODELS = {
    "local": {"kind": "local"},
    "xl": {"kind": "xl"},
    "memorizing_512": {"kind": "memorizing", "memory_size": 512, "num_neighbors": 8},
    "block_recurrent_lstm": {"kind": "block_recurrent", "gate": "lstm", "num_states": 8},
    "melodi": {
        "kind": "melodi",
        "summary_size": 4,
        "short_term_memory_size": 4,
        "long_term_memory_size": 128,
        "long_term_increment": 4,
    },
}

# Model name -> `MemoryLM.from_preset("tiny", ...)` options for `keras-memory
# bench recall --task prose-facts`: facts in real prose asked again 200 to
# 3,000 bytes later. The memorizing models hold 2,048 entries (16 segments);
# `memorizing_copy` adds the two options that let it learn to copy at this
# size (a position bias in the memory layer's local attention, smeared keys).
PROSE_RECALL_MODELS = {
    "xl": {"kind": "xl"},
    "memorizing": {"kind": "memorizing", "memory_size": 2048},
    "memorizing_copy": {
        "kind": "memorizing",
        "memory_size": 2048,
        "local_position_bias": True,
        "smear_keys": True,
    },
    "block_recurrent_lstm": {"kind": "block_recurrent", "gate": "lstm"},
    "melodi": {"kind": "melodi"},
}

# `keras-memory bench speed --config NAME` (and `keras_memory.bench.ceiling`):
# the configs of the reference figures in benchmarks/README.md ("Peers"): a
# preset, its overrides, the batch size.
SPEED_CONFIGS = {
    # The PyTorch peers' CPU config: d512, 6 layers, 8 heads, 4 windows of 512.
    "d512": {
        "preset": "small_d512",
        "window_length": 512,
        "segment_length": 2048,
        "batch_size": 2,
    },
    # "P150": d1024, 12 layers, 16 heads, 8 windows of 512, batch 8, bf16.
    "p150": {
        "preset": "medium_150m",
        "num_heads": 16,
        "head_dim": 64,
        "window_length": 512,
        "segment_length": 4096,
        "batch_size": 8,
        "precision": "mixed_bfloat16",
    },
}

# Model kind -> its PyTorch peer (`keras_memory.bench.peers`).
PEER_OF_KIND = {"block_recurrent": "block_recurrent", "memorizing": "memorizing"}
