"""Saving a memory state (the functional form's pytree) beside a checkpoint."""

import os

import numpy as np
from keras import ops


def save_memory_state(state, path):
    """Writes a memory state to `path` (`.npz`), atomically.

    A stateful model's memory already travels in its `.keras` file; this is
    for the functional form, where the state is a value the caller holds (a
    layer's dict, or a model's list of per-block dicts): a long inference
    session or a custom training loop can stop and resume with the same
    memory.

    Args:
        state: dict of tensors, or a list of such dicts.
        path: str. Destination file; written to a temporary name first.

    Example:
    ```python
    logits, state = model(inputs, state=state)
    save_memory_state(state, "workdir/memory.npz")
    state = load_memory_state("workdir/memory.npz")
    ```
    """
    arrays = {}
    blocks = state if isinstance(state, (list, tuple)) else [state]
    for i, block in enumerate(blocks):
        if not isinstance(block, dict):
            raise ValueError(
                "`state` must be a dict of tensors or a list of such dicts; got "
                f"{type(block).__name__} at position {i}."
            )
        arrays[f"{i}/__block__"] = np.zeros(0)
        for name, value in block.items():
            arrays[f"{i}/{name}"] = ops.convert_to_numpy(value)
    arrays["__is_list__"] = np.array(isinstance(state, (list, tuple)))
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    temp = os.path.join(directory, f".tmp-{os.path.basename(path)}")
    with open(temp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(temp, path)


def load_memory_state(path):
    """Reads a memory state written by `save_memory_state`, as numpy arrays.

    Returns:
        The dict, or list of dicts, that was saved; pass it as `state=`.
    """
    with np.load(path) as data:
        blocks = {}
        for key in data.files:
            if key == "__is_list__":
                continue
            index, name = key.split("/", 1)
            block = blocks.setdefault(int(index), {})
            if name != "__block__":
                block[name] = data[key]
        state = [blocks[i] for i in sorted(blocks)]
        return state if bool(data["__is_list__"]) else state[0]
