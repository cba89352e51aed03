"""Generation with a memory LM: the function form of `SegmentLM.generate`.

`model.generate(prompts, max_new_tokens=...)` (keras-hub's convention) and
`generate(model, prompts, ...)` are the same: each prompt is read segment by
segment as in training, then every new token re-reads only the window that
holds it (`keras_memory.models.IncrementalDecoder`), compiled, with a
keras-hub sampler. See the "Generating" tutorial.
"""

from keras_memory.models.rebuild import rebuild_model


def functional_twin(model):
    """Returns a non-stateful copy of `model` holding its trained weights' values."""
    return rebuild_model(model, stateful=False)


def generate(model, prompts, max_length=None, **kwargs):
    """Continues `prompts` with `model`; `SegmentLM.generate` documents the arguments.

    Example:
    ```python
    model = keras_memory.models.MemoryLM.from_preset("tiny", kind="xl")
    text = generate(model, "def f(x):", max_new_tokens=20, sampler="greedy")
    ```
    """
    return model.generate(prompts, max_length, **kwargs)
