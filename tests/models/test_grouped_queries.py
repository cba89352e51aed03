"""Grouped-query attention (`num_key_value_heads`) in every kind that takes it.

A model whose `R` query heads share each key/value head computes what a
model with one key/value head per query head computes when that model's
key and value weights repeat each shared head `R` times: these tests build
both, copy the weights across (repeating the shared heads' columns) and
compare their logits over several segments, so the caches, memories and
recurrent states carried between segments count too.
"""

import keras
import numpy as np
import pytest

from keras_memory.models import MemoryLM

W = 4
HEADS = 4
HEAD_DIM = 4
SMALL = dict(
    hidden_dim=16,
    num_layers=2,
    num_heads=HEADS,
    head_dim=HEAD_DIM,
    intermediate_dim=32,
    window_length=W,
    segment_length=2 * W,
)
# Each kind, with the options that keep keys in other places (registers, a
# compressed memory, smeared keys, a host memory, a recurrent state read by
# other layers).
CONFIGS = {
    "local": ("local", {}),
    "xl_compressed_rotary": (
        "xl",
        {"compressed_memory_size": 4, "compression_rate": 2, "rotary": "standard"},
    ),
    "xl_registers": ("xl", {"num_registers": 2}),
    "memorizing_copy": (
        "memorizing",
        {"memory_size": 16, "num_neighbors": 3, "local_position_bias": True, "smear_keys": True},
    ),
    "memorizing_host": (
        "memorizing",
        {"memory_size": 16, "num_neighbors": 3, "memory_placement": "host"},
    ),
    "memorizing_dense": ("memorizing_dense", {"memory_size": 16}),
    "block_recurrent_feedback": (
        "block_recurrent",
        {"num_states": 3, "gate": "lstm", "feedback": True},
    ),
}


def make_model(config, num_key_value_heads):
    kind, options = CONFIGS[config]
    return MemoryLM.from_preset(
        "tiny", kind=kind, num_key_value_heads=num_key_value_heads, **SMALL, **options
    )


def repeat_heads(columns, repeats):
    """`(rows, G * d)` kernel columns with each head's `d` columns repeated."""
    rows = columns.shape[0]
    grouped = columns.reshape(rows, -1, HEAD_DIM)
    return np.repeat(grouped, repeats, axis=1).reshape(rows, -1)


def expanded(path, value, key_value_heads):
    """A grouped model's weight as the one-head-per-query model's weight."""
    repeats = HEADS // key_value_heads
    inner, shared = HEADS * HEAD_DIM, key_value_heads * HEAD_DIM
    name = path.split("/")[-2:]
    if name == ["qkv_projection", "kernel"]:  # [queries | keys | values]
        queries, keys, values = np.split(value, [inner, inner + shared], axis=1)
        return np.concatenate(
            [queries, repeat_heads(keys, repeats), repeat_heads(values, repeats)], axis=1
        )
    if name == ["state_qkv_projection", "kernel"]:  # [keys | values | queries | queries2]
        keys, values, queries = np.split(value, [shared, 2 * shared], axis=1)
        return np.concatenate(
            [repeat_heads(keys, repeats), repeat_heads(values, repeats), queries], axis=1
        )
    if name[-1] in ("register_keys", "register_values"):  # (registers, heads, dim)
        return np.repeat(value, repeats, axis=1)
    if name[-1] == "key_smear":  # (heads,)
        return np.repeat(value, repeats, axis=0)
    return value


def segments(count, seed=0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(3, 259, size=(2, count * 2 * W)).astype("int32")
    for i in range(count):
        # The second row starts a new document at the third segment.
        reset = np.array([i == 0, i in (0, 2)])
        yield {"tokens": tokens[:, i * 2 * W : (i + 1) * 2 * W], "reset": reset}


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_grouped_queries_compute_what_repeated_key_value_heads_compute(config):
    # Two key heads for four query heads: query heads 0, 1 read key head 0 and
    # 2, 3 key head 1, which a wrong pairing would break. (One key head is
    # generated token by token in tests/test_generation.py and compared
    # across backends in tests/parity_registry.py.)
    key_value_heads = 2
    grouped = make_model(config, key_value_heads)
    full = make_model(config, None)
    inputs = list(segments(4))
    grouped(inputs[0])
    full(inputs[0])
    # Both models create their weights in one order (auto-numbered names may differ).
    assert len(grouped.weights) == len(full.weights)
    for variable, target in zip(grouped.weights, full.weights):
        target.assign(
            expanded(variable.path, keras.ops.convert_to_numpy(variable), key_value_heads)
        )
    # The grouped model holds fewer keys: its caches and memories are smaller.
    if config != "local":
        grouped_sizes = [np.prod(v.shape) for b in grouped(inputs[0])[1] for v in b.values()]
        full_sizes = [np.prod(v.shape) for b in full(inputs[0])[1] for v in b.values()]
        assert sum(grouped_sizes) < sum(full_sizes)
    state_grouped = state_full = None
    for x in inputs:
        logits_grouped, state_grouped = grouped(x, state=state_grouped)
        logits_full, state_full = full(x, state=state_full)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(logits_grouped),
            keras.ops.convert_to_numpy(logits_full),
            rtol=1e-4,
            atol=1e-4,
        )


def test_grouped_query_layers_save_and_load(tmp_path):
    model = make_model("block_recurrent_feedback", 2)
    x = next(segments(1))
    logits, _ = model(x)
    path = str(tmp_path / "grouped.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    again, _ = loaded(x)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(again), keras.ops.convert_to_numpy(logits), rtol=1e-5
    )
    assert [layer.num_key_value_heads for layer in _attention_layers(loaded)] == [2, 2]


def _attention_layers(model):
    from keras_memory.layers.attention_heads import AttentionHeads
    from keras_memory.layers.memory_layer import memory_layers

    return [layer for layer in memory_layers(model) if isinstance(layer, AttentionHeads)]


@pytest.mark.parametrize(
    "value, message",
    [
        (3, "`num_key_value_heads` must divide `num_heads` (4); got 3"),
        (0, "num_key_value_heads"),
        (2.0, "num_key_value_heads"),
    ],
)
def test_bad_key_value_heads_are_refused_by_name(value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        MemoryLM.from_preset("tiny", kind="xl", num_key_value_heads=value, **SMALL)


def test_melodi_refuses_grouped_queries_by_name():
    with pytest.raises(ValueError, match="melodi kind does not take.*num_key_value_heads"):
        MemoryLM.from_preset("tiny", kind="melodi", num_key_value_heads=1)
