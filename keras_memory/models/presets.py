"""Model presets: plain data.

Each preset gives the sizes of a decoder LM and the segment length it is
trained with. `MemoryLM.from_preset(name, kind=...)` builds one; any key can
be overridden there. `num_states` is read by the `block_recurrent` kind only
(meliad: 512 state vectors, fixed gate, skip variant, recurrent layer 9 of
12, which are the kind's defaults).
"""

PRESETS = {
    # A CPU test size: trains in minutes on two cores.
    "tiny": {
        "vocab_size": 259,
        "hidden_dim": 64,
        "num_layers": 2,
        "num_heads": 4,
        "head_dim": 16,
        "intermediate_dim": 256,
        "window_length": 32,
        "segment_length": 128,
        "num_states": 32,
    },
    # The d512 / 6-layer config of the CPU benchmarks (shared/bench).
    "small_d512": {
        "vocab_size": 259,
        "hidden_dim": 512,
        "num_layers": 6,
        "num_heads": 8,
        "head_dim": 64,
        "intermediate_dim": 2048,
        "window_length": 512,
        "segment_length": 2048,
        "num_states": 512,
    },
    # meliad's medium 150M model (size/medium150M.gin) with a 32k vocabulary.
    "medium_150m": {
        "vocab_size": 32000,
        "hidden_dim": 1024,
        "num_layers": 12,
        "num_heads": 8,
        "head_dim": 128,
        "intermediate_dim": 4096,
        "window_length": 512,
        "segment_length": 4096,
        "num_states": 512,
    },
}

# kNN / dense-KV memory sizes of the Memorizing Transformer paper's experiments.
MEMORY_SIZES = {"8k": 8192, "32k": 32768, "64k": 65536, "262k": 262144}
