"""The keras-hub samplers generation draws tokens with."""

import keras_hub
import numpy as np
from keras import ops

# keras-hub's samplers that draw each token from its own logits alone; the
# others (beam, contrastive) run their own search loop over hidden states.
STEP_SAMPLERS = ("greedy", "random", "top_k", "top_p")


def get_sampler(sampler):
    """Returns a `keras_hub.samplers.Sampler` for a name, a config or an instance.

    Args:
        sampler: one of `STEP_SAMPLERS` (keras-hub's defaults: `"top_k"` is
            k=5), a `keras_hub.samplers.Sampler` of those kinds (e.g.
            `keras_hub.samplers.TopPSampler(p=0.9, temperature=0.8, seed=1)`),
            or its serialized config.

    Raises:
        ValueError: naming `sampler`, for an unknown name or a sampler that
            needs its own search loop (beam, contrastive).
    """
    if isinstance(sampler, str) and sampler not in STEP_SAMPLERS:
        raise ValueError(f"`sampler` must be one of {list(STEP_SAMPLERS)}; got {sampler!r}.")
    try:
        sampler = keras_hub.samplers.get(sampler)
    except (ValueError, TypeError) as error:
        raise ValueError(f"`sampler` could not be read: {error}") from None
    if not isinstance(sampler, keras_hub.samplers.Sampler):
        raise ValueError(f"`sampler` must be a keras_hub Sampler; got {type(sampler).__name__}.")
    if type(sampler).get_next_token is keras_hub.samplers.Sampler.get_next_token:
        raise ValueError(
            f"`sampler` {type(sampler).__name__} runs its own search loop, which memory "
            f"decoding does not support; use one of {list(STEP_SAMPLERS)}."
        )
    if getattr(sampler, "temperature", 1.0) <= 0:
        raise ValueError(
            f"`sampler` temperature must be > 0 (use sampler='greedy' for the most likely "
            f"token); got {sampler.temperature}."
        )
    return sampler


def next_tokens(sampler, logits, excluded_id):
    """Draws one token per row from float32 logits `(batch, vocab)`, never `excluded_id`.

    Returns:
        An int32 numpy array `(batch,)`.
    """
    logits = np.array(logits, dtype=np.float32)
    logits[:, excluded_id] = -np.inf
    probabilities = sampler.compute_probabilities(logits)
    return ops.convert_to_numpy(sampler.get_next_token(probabilities)).astype(np.int32)
