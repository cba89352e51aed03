"""The registry names every kind once, and a new kind plugs in with one registration.

The toy kind below is the worked example of docs/architecture.md: a memory
that carries only the last token of the previous segment. It lives outside
the library, in under 100 lines, and `make_blocks`, `MemoryLM.from_preset`
and saving a model take it like any built-in kind.
"""

import dataclasses

import keras
import numpy as np
import pytest
from keras import ops

from keras_memory.layers import MemoryLayer
from keras_memory.memories import (
    MemoryKind,
    get_kind,
    kind_names,
    make_blocks,
    register_kind,
    transformer_blocks,
    unregister_kind,
)
from keras_memory.models import MemoryLM
from tests.conftest import to_numpy


@keras.saving.register_keras_serializable(package="keras_memory_tests")
class LastTokenMemory(MemoryLayer):
    """Every position reads a projection of the previous segment's last input."""

    def __init__(self, stateful=False, **kwargs):
        super().__init__(stateful=stateful, **kwargs)

    def build(self, input_shape):
        self.hidden_dim = input_shape[-1]
        self.read = keras.layers.Dense(self.hidden_dim, use_bias=False, dtype=self.dtype_policy)
        self.read.build((None, self.hidden_dim))
        self.build_state(input_shape[0])

    def state_shapes(self, batch_size):
        return {"last": ((batch_size, self.hidden_dim), "float32")}

    def call_with_state(self, x, state, reset, training):
        last = ops.where(reset[:, None], ops.zeros_like(state["last"]), state["last"])
        y = ops.broadcast_to(self.read(ops.cast(last, x.dtype))[:, None], ops.shape(x))
        return y, {"last": ops.cast(x[:, -1], "float32")}


@dataclasses.dataclass(frozen=True)
class LastTokenOptions:
    """The toy kind has no options of its own."""


LAST_TOKEN = MemoryKind(
    name="last_token",
    summary="the previous segment's last token only (a toy)",
    options=LastTokenOptions,
    build_blocks=lambda sizes, options, attention_options: transformer_blocks(
        sizes, lambda i, common: LastTokenMemory(**common)
    ),
    attention_options=(),
    has_cache=False,
)


@pytest.fixture
def last_token_kind():
    register_kind(LAST_TOKEN)
    yield LAST_TOKEN
    unregister_kind(LAST_TOKEN.name)


SMALL = dict(hidden_dim=16, num_layers=1, num_heads=2, head_dim=8, intermediate_dim=32)


def test_a_registered_kind_builds_trains_and_saves_like_a_built_in_one(last_token_kind, tmp_path):
    assert "last_token" in kind_names()
    model = MemoryLM.from_preset("tiny", kind="last_token", **SMALL)
    rng = np.random.default_rng(0)
    first = rng.integers(3, 259, (2, 16))
    start = {"tokens": first, "reset": np.array([True, True])}
    _, state = model(start)
    second = {"tokens": rng.integers(3, 259, (2, 16)), "reset": np.array([False, True])}
    logits, _ = model(second, state=state)

    # The memory is the last token: changing any earlier token of the first
    # segment changes nothing, changing its last token changes what row 0
    # (continuing) reads, and row 1 (a new document) reads nothing of it.
    earlier = first.copy()
    earlier[:, 0] = (earlier[:, 0] + 1 - 3) % 256 + 3
    _, same_state = model({"tokens": earlier, "reset": start["reset"]})
    np.testing.assert_allclose(to_numpy(model(second, state=same_state)[0]), to_numpy(logits))
    last = first.copy()
    last[:, -1] = (last[:, -1] + 1 - 3) % 256 + 3
    _, other_state = model({"tokens": last, "reset": start["reset"]})
    changed = to_numpy(model(second, state=other_state)[0])
    assert not np.allclose(changed[0], to_numpy(logits)[0])
    np.testing.assert_allclose(changed[1], to_numpy(logits)[1], rtol=1e-6, atol=1e-6)

    path = str(tmp_path / "toy.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        to_numpy(loaded(second, state=state)[0]), to_numpy(logits), rtol=1e-6, atol=1e-6
    )


def test_a_kind_takes_only_its_own_and_the_attention_options(last_token_kind):
    with pytest.raises(ValueError, match="does not take"):
        make_blocks(
            "last_token",
            num_layers=1,
            num_heads=2,
            head_dim=8,
            intermediate_dim=32,
            window_length=8,
            include_self=True,
        )


def test_every_built_in_kind_is_registered_once_with_documented_options():
    assert kind_names()[:6] == (
        "local",
        "xl",
        "memorizing",
        "memorizing_dense",
        "block_recurrent",
        "melodi",
    )
    for name in kind_names():
        kind = get_kind(name)
        assert kind.name == name and kind.summary
        for field in dataclasses.fields(kind.options):
            assert field.metadata.get("help"), (name, field.name)
            assert field.default is not dataclasses.MISSING, (name, field.name)


def test_names_that_are_not_kinds_are_refused_by_name():
    with pytest.raises(ValueError, match="`kind` must be one of"):
        get_kind("knn-someday")
    with pytest.raises(ValueError, match="already registered"):
        register_kind(get_kind("xl"))
    with pytest.raises(ValueError, match="built-in"):
        unregister_kind("xl")


@pytest.mark.parametrize("kind", ["memorizing", "block_recurrent", "melodi"])
def test_sizes_may_be_numpy_ints(kind):
    blocks = make_blocks(
        kind,
        num_layers=np.int64(3),
        num_heads=np.int64(2),
        head_dim=8,
        intermediate_dim=32,
        window_length=8,
        memory_size=64,
        num_states=4,
        summary_size=2,
        short_term_memory_size=2,
        long_term_memory_size=8,
        long_term_increment=2,
    )
    assert len(blocks) == 3


def test_another_kinds_option_is_refused_unless_it_is_a_size():
    sizes = dict(num_layers=2, num_heads=2, head_dim=8, intermediate_dim=32, window_length=8)
    # Sizes of other kinds are left out: one dict of sizes serves every kind.
    assert len(make_blocks("xl", memory_size=64, num_states=4, **sizes)) == 2
    # So is an option at its default, which asks for nothing.
    assert len(make_blocks("xl", gate="fixed", feedback=False, **sizes)) == 2
    with pytest.raises(ValueError, match="`gate` is an option of the block_recurrent kind"):
        make_blocks("xl", gate="lstm", **sizes)
    with pytest.raises(ValueError, match="`retrieval` is an option of the memorizing kind"):
        make_blocks("memorizing_dense", retrieval="scann", **sizes)
