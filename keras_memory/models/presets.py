"""Model presets: plain data.

Each preset gives the sizes of a decoder LM and the segment length it is
trained with. `MemoryLM.from_preset(name, kind=...)` builds one; any key can
be overridden there. `num_states` is read by the `block_recurrent` kind only
(meliad: 512 state vectors, fixed gate, skip variant, recurrent layer 9 of
12, which are the kind's defaults). The Melodi sizes (`summary_size`,
`short_term_memory_size`, `long_term_memory_size`, `long_term_increment`)
are read by the `melodi` kind only; `melodi_base` is meliad's
`base_melodi.gin` and `melodi_s128_l64` the paper's S128+L64 setting (128
short-term and summary tokens, 64 long-term tokens per window) with a
long-term memory of 128 windows. The `lswt_*` presets are the
Long-Short-Working Transformer's sizes and options (`lswt_cpu` its options at
the `tiny` size); they suit every kind but `melodi`.
"""

_MELODI_MELIAD = {
    "summary_size": 64,
    "short_term_memory_size": 64,
    "long_term_memory_size": 4096,
    "long_term_increment": 32,
}

# The preset keys that size a model, whatever its memory: two models that
# agree on these have the same embedding, blocks and projections.
SIZE_OPTIONS = (
    "hidden_dim",
    "num_heads",
    "head_dim",
    "intermediate_dim",
    "num_layers",
    "window_length",
    "segment_length",
)

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
        "summary_size": 8,
        "short_term_memory_size": 8,
        "long_term_memory_size": 256,
        "long_term_increment": 4,
    },
    # The d512 / 6-layer config of the CPU speed benchmarks (`bench speed --config d512`).
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
        **_MELODI_MELIAD,
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
        **_MELODI_MELIAD,
    },
}
# meliad's base_melodi.gin: medium_150m byte-level (long-term layer 6 of 12).
PRESETS["melodi_base"] = {**PRESETS["medium_150m"], "vocab_size": 259}
# The paper's Melodi S128+L64 at the base_melodi size.
PRESETS["melodi_s128_l64"] = {
    **PRESETS["melodi_base"],
    "summary_size": 128,
    "short_term_memory_size": 128,
    "long_term_memory_size": 8192,
    "long_term_increment": 64,
}

# The Long-Short-Working Transformer's options (its `LSWTConfig` defaults):
# OPT-125m's 50272-token vocabulary and 768-wide embedding, projected to the
# model width; SwiGLU; reversed RoPE with base 500000 instead of a position
# bias; plain dot-product attention (no key normalisation); 16 attention
# registers; SimCTG with margin 0.5; a 2048-token cache and segment.
_LSWT = {
    "vocab_size": 50272,
    "embedding_dim": 768,
    "head_dim": 64,
    "window_length": 2048,
    "segment_length": 2048,
    "activation": "swiglu",
    "rotary": "reversed",
    "rotary_base": 500000.0,
    "use_position_bias": False,
    "normalize_keys": False,
    "num_registers": 16,
    "contrastive_margin": 0.5,
    "num_states": 512,
}


def _lswt(hidden_dim, num_layers):
    # The LSWT README's sizes: 64-wide heads and a 4x (after gating) SwiGLU.
    return {
        **_LSWT,
        "hidden_dim": hidden_dim,
        "num_layers": num_layers,
        "num_heads": hidden_dim // 64,
        "intermediate_dim": 4 * hidden_dim,
    }


PRESETS.update(
    {
        # The LSWT options at a CPU test size (byte vocabulary).
        "lswt_cpu": {
            **PRESETS["tiny"],
            **{key: _LSWT[key] for key in ("activation", "rotary", "rotary_base")},
            "use_position_bias": False,
            "normalize_keys": False,
            "embedding_dim": 32,
            "num_registers": 4,
            "contrastive_margin": 0.5,
        },
        # The LSWT README's family (its parameter counts: 153M to 13B).
        "lswt_tiny": _lswt(768, 12),
        "lswt_small": _lswt(1024, 18),
        "lswt_medium": _lswt(1536, 24),
        "lswt_large": _lswt(2048, 36),
        "lswt_xl": _lswt(3072, 48),
        "lswt_xxl": _lswt(4096, 48),
    }
)

# kNN / dense-KV memory sizes of the Memorizing Transformer paper's experiments.
MEMORY_SIZES = {"8k": 8192, "32k": 32768, "64k": 65536, "262k": 262144}
