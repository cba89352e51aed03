import json
import os

import keras
import numpy as np
import pytest

from keras_memory.data import ByteTokenizer, SegmentStream
from keras_memory.models import PRESETS, MemoryLM
from tests.conftest import to_numpy

W = 8
SMALL = dict(
    hidden_dim=16, num_layers=2, num_heads=2, head_dim=8, intermediate_dim=32, window_length=W
)


def small_model(kind="xl", stateful=False, **overrides):
    return MemoryLM.from_preset("tiny", kind=kind, stateful=stateful, **{**SMALL, **overrides})


def tokens(batch, length, seed=0):
    return np.random.default_rng(seed).integers(3, 259, size=(batch, length)).astype("int32")


def starts(*flags):
    return np.array(flags, dtype=bool)


def test_presets_are_plain_data_with_the_issue_sizes():
    medium = PRESETS["medium_150m"]
    assert (
        medium["num_layers"],
        medium["hidden_dim"],
        medium["num_heads"],
        medium["head_dim"],
        medium["intermediate_dim"],
        medium["segment_length"],
        medium["window_length"],
    ) == (12, 1024, 8, 128, 4096, 4096, 512)


@pytest.mark.parametrize("name, readme_parameters", [("lswt_tiny", 153e6), ("lswt_small", 343e6)])
def test_lswt_presets_have_the_parameter_counts_of_the_lswt_readme(name, readme_parameters):
    # Layers are alike and the vocabulary only adds embedding rows, so two
    # small builds give the full count without allocating it.
    def count(num_layers):
        model = MemoryLM.from_preset(
            name, kind="xl", num_layers=num_layers, vocab_size=259, window_length=8
        )
        model({"tokens": np.ones((1, 8), "int32"), "reset": starts(True)})
        return model.count_params()

    one, two = count(1), count(2)
    preset = PRESETS[name]
    total = one + (preset["num_layers"] - 1) * (two - one)
    total += (preset["vocab_size"] - 259) * preset["embedding_dim"]
    # The README rounds; LSWT's projections have biases, ours none.
    assert abs(total / readme_parameters - 1) < 0.01


def test_lswt_cpu_preset_has_every_lswt_option():
    model = MemoryLM.from_preset("lswt_cpu", kind="xl")
    model({"tokens": np.ones((1, 128), "int32"), "reset": starts(True)})
    attention = model.blocks[0].attention
    assert (attention.rotary, attention.rotary_base, attention.num_registers) == (
        "reversed",
        500000.0,
        4,
    )
    assert not attention.use_position_bias and not attention.normalize_keys
    assert model.blocks[0].ffn.gated and model.contrastive_margin == 0.5
    assert model.embedding_dim == 32 and model.hidden_dim == 64


def test_xl_model_two_segments_equal_one_double_segment():
    model = small_model()
    x = tokens(2, 2 * W)
    whole, _ = model({"tokens": x, "reset": starts(True, True)})
    first, state = model({"tokens": x[:, :W], "reset": starts(True, True)})
    second, _ = model({"tokens": x[:, W:], "reset": starts(False, False)}, state=state)
    np.testing.assert_allclose(
        np.concatenate([to_numpy(first), to_numpy(second)], 1), to_numpy(whole), atol=1e-4
    )


def test_local_model_forgets_the_previous_segment_and_xl_remembers():
    x1a, x1b, x2 = tokens(1, W, 1), tokens(1, W, 2), tokens(1, W, 3)
    for kind, remembers in (("local", False), ("xl", True)):
        model = small_model(kind)
        outputs = []
        for first in (x1a, x1b):
            _, state = model({"tokens": first, "reset": starts(True)})
            logits, _ = model({"tokens": x2, "reset": starts(False)}, state=state)
            outputs.append(to_numpy(logits))
        assert (not np.allclose(*outputs)) == remembers, kind


def test_functional_save_load_round_trip(tmp_path):
    model = small_model()
    x = {"tokens": tokens(2, W), "reset": starts(True, True)}
    expected, _ = model(x)
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    got, _ = loaded(x)
    np.testing.assert_allclose(to_numpy(got), to_numpy(expected), atol=1e-6)
    # Shapes come back from JSON as lists; compare through JSON.
    assert json.loads(json.dumps(loaded.get_config())) == json.loads(json.dumps(model.get_config()))


def test_stateful_save_load_keeps_the_memory(tmp_path):
    model = small_model(stateful=True)
    model({"tokens": tokens(2, W, 1), "reset": starts(True, True)})
    x = {"tokens": tokens(2, W, 2), "reset": starts(False, False)}
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(model(x)), atol=1e-5)


def make_stream(batch=2, seed=0):
    tokenizer = ByteTokenizer()
    rng = np.random.default_rng(seed)
    docs = [
        tokenizer.encode("".join(rng.choice(list("abcdef "), size=n))) for n in (40, 10, 25, 33)
    ]
    return SegmentStream(docs, batch_size=batch, segment_length=2 * W, seed=seed)


def test_stateful_fit_carries_the_cache_through_the_stream():
    stream = make_stream()
    model = small_model(stateful=True)
    # A zero learning rate keeps the weights fixed, so the cache after fit
    # must equal a functional pass over the same segments.
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0))
    model.fit(stream, epochs=1, verbose=0)  # a stateful model never shuffles
    functional = small_model(stateful=False)
    functional({"tokens": tokens(2, W), "reset": starts(True, True)})
    for target, source in zip(functional.trainable_weights, model.trainable_weights):
        target.assign(source)
    state = None
    replay = make_stream()
    for step in range(len(replay)):
        inputs, _ = replay[step]
        _, state = functional(inputs, state=state)
    for block, block_state in zip(model.blocks, state):
        np.testing.assert_allclose(
            to_numpy(block.attention.read_state()["keys"]),
            to_numpy(block_state["keys"]),
            atol=1e-5,
        )


def test_stateful_fit_learns():
    stream = make_stream()
    model = small_model(stateful=True)
    model.compile(optimizer=keras.optimizers.AdamW(3e-3))
    history = model.fit(stream, epochs=6, verbose=0, shuffle=False)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_default_loss_ignores_padding_targets():
    model = small_model()
    model.compile()
    x = {"tokens": tokens(2, W), "reset": starts(True, True)}
    targets = tokens(2, W, 5)
    targets[:, W // 2 :] = 0
    logits, _ = model(x)
    logits = to_numpy(logits)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_probs, targets[..., None], -1)[..., 0]
    expected = -picked[:, : W // 2].mean()
    got = float(to_numpy(model.loss(targets, logits)))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_bad_inputs_name_the_argument():
    model = small_model()
    with pytest.raises(ValueError, match=r"vocab_size=259"):
        model({"tokens": np.full((1, W), 300, "int32")})
    with pytest.raises(ValueError, match=r"\(batch, sequence\)"):
        model(np.ones((W,), "int32"))
    with pytest.raises(ValueError, match="multiple of `window_length`"):
        model(tokens(1, W + 3))
    with pytest.raises(ValueError, match="Unknown preset"):
        MemoryLM.from_preset("huge")
    with pytest.raises(ValueError, match="`kind`"):
        MemoryLM.from_preset("tiny", kind="knn-someday")
    with pytest.raises(ValueError, match="list of 2 per-block states"):
        model(tokens(1, W), state=[{}])
    stateful = small_model(stateful=True)
    stateful({"tokens": tokens(2, W), "reset": starts(True, True)})
    with pytest.raises(ValueError, match="batch size 2"):
        stateful({"tokens": tokens(3, W), "reset": starts(True, True, True)})
    stateful.compile()
    with pytest.raises(ValueError, match="out of order"):
        stateful.fit(make_stream(), shuffle=True, verbose=0)


def test_memorizing_model_has_one_knn_layer_and_round_trips(tmp_path):
    from keras_memory.layers import KNNAttention

    model = small_model("memorizing", num_layers=3, memory_size=4 * W, num_neighbors=4)
    kinds = [type(b.attention).__name__ for b in model.blocks]
    assert kinds == ["XLAttention", "XLAttention", "KNNAttention"]
    first, state = model({"tokens": tokens(2, 2 * W), "reset": starts(True, True)})
    x = {"tokens": tokens(2, 2 * W, 1), "reset": starts(False, True)}
    expected, _ = model(x, state=state)
    path = os.path.join(tmp_path, "memorizing.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.blocks[2].attention, KNNAttention)
    got, _ = loaded(x, state=state)
    np.testing.assert_allclose(to_numpy(got), to_numpy(expected), atol=1e-5)


def test_memorizing_without_the_xl_cache_remembers_only_through_its_memory(tmp_path):
    x1a, x1b, x2 = tokens(1, W, 1), tokens(1, W, 2), tokens(1, W, 3)
    model = small_model("memorizing", memory_size=4 * W, num_neighbors=4, use_cache=False)
    assert not any(b.attention.use_cache for b in model.blocks)
    model({"tokens": x1a, "reset": starts(True)})  # builds the gate
    knn = model.blocks[-1].attention

    def second_segment_logits():
        outputs = []
        for first in (x1a, x1b):
            _, state = model({"tokens": first, "reset": starts(True)})
            logits, _ = model({"tokens": x2, "reset": starts(False)}, state=state)
            outputs.append(to_numpy(logits))
        return outputs

    # With the memory's gate shut nothing of the first segment reaches the second...
    knn.memory_gate.assign(np.full(knn.memory_gate.shape, -30.0, "float32"))
    np.testing.assert_allclose(*second_segment_logits(), atol=1e-5)
    # ...and with it open the memory does.
    knn.memory_gate.assign(np.zeros(knn.memory_gate.shape, "float32"))
    assert not np.allclose(*second_segment_logits(), atol=1e-4)
    path = os.path.join(tmp_path, "no_cache.keras")
    model.save(path)
    assert not any(b.attention.use_cache for b in keras.saving.load_model(path).blocks)


def test_use_cache_is_checked_against_the_kind():
    with pytest.raises(ValueError, match="kind='local' has no cache"):
        small_model("local", use_cache=True)
    with pytest.raises(ValueError, match="`use_cache` must be a bool"):
        small_model("memorizing", use_cache="no")


@pytest.mark.parametrize("retrieval", ["exact", "scann"])
def test_stateful_memorizing_model_fits(retrieval):
    model = small_model(
        "memorizing", stateful=True, memory_size=4 * W, num_neighbors=4, retrieval=retrieval
    )
    model.compile(optimizer=keras.optimizers.AdamW(3e-3))
    history = model.fit(make_stream(), epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    memory = model.blocks[-1].attention.read_state()
    assert to_numpy(memory["memory_valid"]).sum() > 0


def test_dense_memorizing_model_round_trips(tmp_path):
    from keras_memory.layers import DenseKVAttention

    model = small_model("memorizing_dense", memory_size=4 * W)
    assert isinstance(model.blocks[-1].attention, DenseKVAttention)
    _, state = model({"tokens": tokens(2, 2 * W), "reset": starts(True, True)})
    x = {"tokens": tokens(2, 2 * W, 1), "reset": starts(False, True)}
    expected, _ = model(x, state=state)
    path = os.path.join(tmp_path, "dense.keras")
    model.save(path)
    got, _ = keras.saving.load_model(path)(x, state=state)
    np.testing.assert_allclose(to_numpy(got), to_numpy(expected), atol=1e-5)


def test_block_recurrent_model_two_segments_equal_one_and_round_trips(tmp_path):
    model = small_model("block_recurrent", num_states=4, gate="lstm", variant="dual")
    # meliad's place, third from the top, is layer 0 of a 2-layer stack.
    recurrent = model.blocks[0].attention
    assert type(recurrent).__name__ == "BlockRecurrentAttention" and recurrent.num_states == 4
    assert type(model.blocks[1].attention).__name__ == "XLAttention"
    x = tokens(2, 2 * W)
    whole, _ = model({"tokens": x, "reset": starts(True, True)})
    first, state = model({"tokens": x[:, :W], "reset": starts(True, True)})
    second, _ = model({"tokens": x[:, W:], "reset": starts(False, False)}, state=state)
    np.testing.assert_allclose(
        to_numpy(whole), np.concatenate([to_numpy(first), to_numpy(second)], 1), atol=1e-4
    )
    path = os.path.join(tmp_path, "recurrent.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    again, _ = loaded({"tokens": x, "reset": starts(True, True)})
    np.testing.assert_allclose(to_numpy(again), to_numpy(whole), atol=1e-5)


def memory_of(model):
    """Every block's state as numpy arrays (a copy: variables change in place on torch)."""
    return [{k: to_numpy(v) for k, v in block.read_state().items()} for block in model.blocks]


def logits_keeping_memory(model, x, training, memory=None):
    """A stateful model's logits on `x` (no row starts a document) from `memory`, then restored.

    `memory` (default: the model's own) is written first; afterwards the
    model's memory is what it was, so calls can be compared.
    """
    saved = memory_of(model)
    for block, state in zip(model.blocks, memory or saved):
        block.write_state(state)
    logits = to_numpy(model({"tokens": x, "reset": starts(False, False)}, training=training))
    for block, state in zip(model.blocks, saved):
        block.write_state(state)
    return logits


def test_block_recurrent_model_fits_with_state_dropout():
    model = small_model("block_recurrent", stateful=True, num_states=4, state_dropout=0.5)
    model.compile(optimizer=keras.optimizers.AdamW(3e-3))
    losses = model.fit(make_stream(), epochs=2, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses))
    # In training each row starts a segment from the learned initial state
    # with probability 0.5 (its XL cache kept); at inference never. So every
    # row of a training call is either the inference row or the row with
    # its recurrent state forgotten, and some calls forget some row.
    x = tokens(2, 2 * W, seed=5)
    inference = logits_keeping_memory(model, x, training=False)
    forgotten_memory = memory_of(model)
    forgotten_memory[0]["recurrent_valid"][:] = 0  # block 0 is the recurrent layer
    forgotten = logits_keeping_memory(model, x, training=False, memory=forgotten_memory)
    assert not np.allclose(forgotten, inference, atol=1e-4)
    dropped_rows = 0
    for _ in range(8):  # the seed generator draws anew each call: 0.25**8 to drop none
        logits = logits_keeping_memory(model, x, training=True)
        for row in range(2):
            dropped = np.allclose(logits[row], forgotten[row], atol=1e-4)
            assert dropped or np.allclose(logits[row], inference[row], atol=1e-4)
            dropped_rows += dropped
    assert dropped_rows > 0
    # With state_dropout=0 (the same weights and memory) training equals inference.
    plain = small_model("block_recurrent", stateful=True, num_states=4)
    plain({"tokens": x, "reset": starts(True, True)})
    plain.set_weights(model.get_weights())
    np.testing.assert_allclose(logits_keeping_memory(plain, x, True), inference, atol=1e-5)
    np.testing.assert_allclose(logits_keeping_memory(plain, x, False), inference, atol=1e-5)


def test_block_recurrent_memory_dropout_from_preset_drops_the_cache_in_training_only():
    # `memory_dropout` is an option of the block_recurrent kind: with p = 1
    # every row ignores the recurrent layer's XL cache in training, so a
    # second segment reads differently from inference; at inference the
    # model computes exactly what the same weights with memory_dropout=0 do.
    dropping = small_model("block_recurrent", num_states=4, memory_dropout=1.0)
    plain = small_model("block_recurrent", num_states=4)
    first, second = tokens(2, W, seed=1), tokens(2, W, seed=2)
    _, state = dropping({"tokens": first, "reset": starts(True, True)})
    plain({"tokens": first, "reset": starts(True, True)})
    plain.set_weights(dropping.get_weights())

    def logits(model, training):
        inputs = {"tokens": second, "reset": starts(False, False)}
        return to_numpy(model(inputs, state=state, training=training)[0])

    inference = logits(dropping, training=False)
    np.testing.assert_allclose(logits(plain, training=False), inference, atol=1e-6)
    np.testing.assert_allclose(logits(plain, training=True), inference, atol=1e-6)
    assert not np.allclose(logits(dropping, training=True), inference, atol=1e-4)


@pytest.mark.parametrize("kind", ["xl", "block_recurrent", "memorizing"])
def test_compressed_xl_memories_in_every_layer_round_trip(tmp_path, kind):
    model = small_model(kind, compressed_memory_size=4, compression_rate=2, num_states=4)
    attentions = [block.attention for block in model.blocks]
    assert all(a.compressed_memory_size == 4 for a in attentions)
    x = tokens(2, 2 * W)
    _, state = model({"tokens": x, "reset": starts(True, True)})
    assert all(to_numpy(s["compressed_valid"]).sum() > 0 for s in state)
    expected, _ = model({"tokens": x, "reset": starts(False, False)}, state=state)
    path = os.path.join(tmp_path, "compressed.keras")
    model.save(path)
    got, _ = keras.saving.load_model(path)(
        {"tokens": x, "reset": starts(False, False)}, state=state
    )
    np.testing.assert_allclose(to_numpy(got), to_numpy(expected), atol=1e-5)
