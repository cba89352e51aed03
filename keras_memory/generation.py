"""Sampling continuations from a memory LM, carrying its memory state."""

import numpy as np
from keras import ops

from keras_memory.data.byte_tokenizer import PAD_ID
from keras_memory.models.rebuild import rebuild_model


def functional_twin(model):
    """Returns a non-stateful copy of `model` holding its trained weights' values."""
    return rebuild_model(model, stateful=False)


def generate(model, prompt, num_tokens, segment_length, temperature=1.0, top_k=None, seed=0):
    """Continues `prompt` by `num_tokens` sampled tokens.

    The prompt is read in whole segments whose memory state is carried
    forward, exactly as in training; the unfinished last segment is kept as
    context and run padded (padding comes after every real token, so causal
    attention makes the logits exact). When it fills up it is committed to
    the state. Cost per token is one segment's forward pass, independent of
    how much came before.

    Args:
        model: a `MemoryLM` (a stateful one is copied to a functional twin).
        prompt: 1-D int array of ids (start it with BOS for a new document).
        num_tokens: int. Tokens to generate.
        segment_length: int. Segment length, a multiple of the window.
        temperature: float. Softmax temperature; 0 means greedy.
        top_k: int or None. Sample among the `top_k` most likely tokens.
        seed: int. Sampling seed.

    Returns:
        A 1-D int32 numpy array of the generated ids.
    """
    model = functional_twin(model)
    rng = np.random.default_rng(seed)
    prompt = np.asarray(prompt, dtype=np.int32).reshape(-1)
    if prompt.size == 0:
        raise ValueError("`prompt` must hold at least one token (e.g. BOS).")
    state, reset = None, True
    full = (len(prompt) - 1) // segment_length * segment_length
    for start in range(0, full, segment_length):
        segment = prompt[None, start : start + segment_length]
        _, state = model({"tokens": segment, "reset": np.array([reset])}, state=state)
        reset = False
    context = list(prompt[full:])
    generated = []
    for _ in range(num_tokens):
        padded = np.full((1, segment_length), PAD_ID, dtype=np.int32)
        padded[0, : len(context)] = context
        logits, next_state = model({"tokens": padded, "reset": np.array([reset])}, state=state)
        logits = ops.convert_to_numpy(logits)[0, len(context) - 1].astype(np.float64)
        token = _sample(logits, temperature, top_k, rng)
        generated.append(token)
        context.append(token)
        if len(context) == segment_length + 1:
            # The full segment is now the model's memory; keep the new token.
            state, reset, context = next_state, False, context[-1:]
    return np.array(generated, dtype=np.int32)


def _sample(logits, temperature, top_k, rng):
    logits[PAD_ID] = -np.inf
    if temperature == 0:
        return int(np.argmax(logits))
    logits = logits / temperature
    if top_k is not None:
        cutoff = np.sort(logits)[-top_k]
        logits = np.where(logits < cutoff, -np.inf, logits)
    probs = np.exp(logits - logits.max())
    return int(rng.choice(len(probs), p=probs / probs.sum()))
