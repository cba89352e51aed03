"""Sampling continuations from a memory LM, carrying its memory state."""

import numpy as np
from keras import ops

from keras_memory.data.tokenizers.byte_tokenizer import PAD_ID
from keras_memory.models.rebuild import rebuild_model


def functional_twin(model):
    """Returns a non-stateful copy of `model` holding its trained weights' values."""
    return rebuild_model(model, stateful=False)


def generate(
    model,
    prompt,
    num_tokens,
    segment_length,
    temperature=1.0,
    top_k=None,
    top_p=None,
    seed=0,
    return_logits=False,
):
    """Continues `prompt` by `num_tokens` sampled tokens.

    The prompt is read in whole segments whose memory state is carried
    forward, exactly as in training; the unfinished last segment is kept as
    context and run padded (padding comes after every real token, so causal
    attention makes the logits exact). When it fills up it is committed to
    the state. Cost per token is one segment's forward pass, independent of
    how much came before. The model's `pad_token_id` pads and is never
    sampled.

    Args:
        model: a `MemoryLM` (a stateful one is copied to a functional twin).
        prompt: 1-D int array of ids (start it with BOS for a new document).
        num_tokens: int. Tokens to generate.
        segment_length: int. Segment length, a multiple of the window.
        temperature: float. Softmax temperature; 0 means greedy.
        top_k: int or None. Sample among the `top_k` most likely tokens.
        top_p: float in (0, 1] or None. Nucleus sampling: among the fewest
            most likely tokens whose probabilities (after temperature and
            `top_k`) sum to at least `top_p`.
        seed: int. Sampling seed.
        return_logits: bool. Also return the logits each token was drawn
            from.

    Returns:
        A 1-D int32 numpy array of the generated ids; with `return_logits`,
        `(ids, logits)` with logits `(num_tokens, vocab_size)` float32.
    """
    _check_sampling(num_tokens, segment_length, temperature, top_k, top_p, model)
    pad_id = getattr(model, "pad_token_id", PAD_ID)
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
    generated, all_logits = [], []
    for _ in range(num_tokens):
        padded = np.full((1, segment_length), pad_id, dtype=np.int32)
        padded[0, : len(context)] = context
        logits, next_state = model({"tokens": padded, "reset": np.array([reset])}, state=state)
        logits = ops.convert_to_numpy(logits)[0, len(context) - 1].astype(np.float64)
        all_logits.append(logits.astype(np.float32))
        token = _sample(logits.copy(), temperature, top_k, top_p, rng, pad_id)
        generated.append(token)
        context.append(token)
        if len(context) == segment_length + 1:
            # The full segment is now the model's memory; keep the new token.
            state, reset, context = next_state, False, context[-1:]
    generated = np.array(generated, dtype=np.int32)
    if return_logits:
        return generated, np.array(all_logits, dtype=np.float32).reshape(num_tokens, -1)
    return generated


def _check_sampling(num_tokens, segment_length, temperature, top_k, top_p, model):
    if not isinstance(num_tokens, int) or num_tokens < 0:
        raise ValueError(f"`num_tokens` must be an int >= 0; got {num_tokens!r}.")
    if not isinstance(segment_length, int) or segment_length < 1:
        raise ValueError(f"`segment_length` must be a positive int; got {segment_length!r}.")
    if temperature < 0:
        raise ValueError(f"`temperature` must be >= 0 (0: greedy); got {temperature!r}.")
    vocab_size = getattr(model, "vocab_size", None)
    if top_k is not None and (
        not isinstance(top_k, int) or top_k < 1 or (vocab_size and top_k > vocab_size)
    ):
        raise ValueError(
            f"`top_k` must be an int in [1, vocab_size={vocab_size}] or None; got {top_k!r}."
        )
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"`top_p` must be in (0, 1] or None; got {top_p!r}.")


def _sample(logits, temperature, top_k, top_p, rng, pad_id):
    logits[pad_id] = -np.inf
    if temperature == 0:
        return int(np.argmax(logits))
    logits = logits / temperature
    if top_k is not None:
        cutoff = np.sort(logits)[-top_k]
        logits = np.where(logits < cutoff, -np.inf, logits)
    probs = np.exp(logits - logits.max())
    probs = probs / probs.sum()
    if top_p is not None:
        order = np.argsort(-probs)
        # Keep the most likely tokens up to and including the one crossing top_p.
        keep = np.cumsum(probs[order]) - probs[order] < top_p
        nucleus = np.zeros_like(probs)
        nucleus[order[keep]] = probs[order[keep]]
        probs = nucleus / nucleus.sum()
    return int(rng.choice(len(probs), p=probs))
