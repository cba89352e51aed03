"""The Long-Short-Working Transformer's toolkit.

LSWT is not one layer but a set of options any kind can take. Its training
pieces live here: SimCTG's contrastive loss and the Sophia optimizer. Its
attention options are pieces every attention layer composes: the trimmed
key/value cache is the Transformer-XL window (`window_length`), reversed RoPE
with dynamic NTK scaling is `keras_memory.ops.rotary`, attention registers
and the cache are pieces of the windowed attention
(`keras_memory.layers.windowed_attention`), SwiGLU is an
activation of `keras_memory.layers.FeedForward`, and the projected word
embedding with warm start is `MemoryLM(embedding_dim=...)` with
`keras_memory.models.warm_start_embedding`. The `lswt_*` presets gather them.

References:
    - The Long-Short-Working Transformer (`memory-transformer-pt4`, a private
      repository; its README lists these features)
    - [Su et al., 2022 (SimCTG)](https://arxiv.org/abs/2202.06417)
    - [Liu et al., 2023 (Sophia)](https://arxiv.org/abs/2305.14342)
"""

from keras_memory.memories.lswt.simctg import simctg_contrastive_loss
from keras_memory.memories.lswt.sophia import Sophia

__all__ = ["Sophia", "simctg_contrastive_loss"]
