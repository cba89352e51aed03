"""Bad input to MemoryLM / MelodiLM: a clear error naming the argument, memory untouched.

Property-based (hypothesis) over the model kinds: tokens of the wrong dtype,
rank, range, batch or segment length, bad `reset`, bad `state`, bad inputs
dicts and bad preset overrides raise ValueError/TypeError naming the
argument. For stateful models every memory variable is bit-identical after a
failed call, including a segment that only a later block cannot read (the
model checks every block before running any). The models are built once.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from keras import ops

from keras_memory.memories import get_kind, kind_names
from keras_memory.models import MemoryLM
from tests.conftest import to_numpy

B = 2
VOCAB = 259
# Small models: window 4, kNN / dense-KV memory 16 (segments 4, 8 and 16 fit).
OVERRIDES = dict(
    num_layers=2,
    hidden_dim=16,
    num_heads=2,
    head_dim=4,
    intermediate_dim=16,
    window_length=4,
    memory_size=16,
    num_neighbors=2,
    num_states=2,
    summary_size=2,
    short_term_memory_size=2,
    long_term_memory_size=4,
    long_term_increment=2,
)
# One model per way the stack runs: layer by layer (xl), with a ring-buffer
# memory in the second block (memorizing), window by window (block-recurrent
# feedback) and packed with summary tokens (melodi).
KINDS = ("xl", "memorizing", "feedback", "melodi")
FUNCTIONAL_KINDS = ("xl", "feedback", "melodi")

FAST = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def make_model(kind, stateful):
    if kind == "feedback":  # block-recurrent with meliad's feedback: runs window by window
        return MemoryLM.from_preset(
            "tiny", kind="block_recurrent", stateful=stateful, feedback=True, **OVERRIDES
        )
    return MemoryLM.from_preset("tiny", kind=kind, stateful=stateful, **OVERRIDES)


def valid_lengths(kind):
    """Segment lengths up to 24: multiples of the window (4) that, with a kNN memory, divide 16."""
    lengths = range(4, 25, 4)
    return [n for n in lengths if kind != "memorizing" or 16 % n == 0]


def tokens(batch, length, seed=0, dtype="int32"):
    return np.random.default_rng(seed).integers(3, VOCAB, size=(batch, length)).astype(dtype)


@pytest.fixture(scope="module")
def stateful_models():
    built = {}
    for kind in KINDS:
        model = make_model(kind, stateful=True)
        model({"tokens": tokens(B, 8, seed=1), "reset": np.ones(B, bool)})
        built[kind] = model
    return built


@pytest.fixture(scope="module")
def functional_models():
    built = {}
    for kind in FUNCTIONAL_KINDS:
        model = make_model(kind, stateful=False)
        _, state = model({"tokens": tokens(B, 8), "reset": np.ones(B, bool)})
        built[kind] = (model, state)
    return built


def memory_of(model):
    return [to_numpy(v).tobytes() for v in model.non_trainable_variables]


def assert_rejected(call, *names):
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    message = str(info.value)
    assert any(f"`{name}`" in message for name in names), message


# (mistake, parameter) -> the inputs of a call, and the argument it must name.
bad_inputs = st.one_of(
    st.tuples(st.just("float_tokens"), st.sampled_from(["float32", "float64", "float16"])),
    st.tuples(st.just("float_tensor"), st.sampled_from(["float32", "bool"])),
    st.tuples(st.just("out_of_range"), st.integers(VOCAB, 10**6) | st.integers(-(10**6), -1)),
    st.tuples(st.just("rank"), st.sampled_from([(8,), (1, 1, 8), (1, 8, 1)])),
    st.tuples(st.just("batch"), st.integers(0, 5).filter(lambda b: b != B)),
    st.tuples(st.just("length"), st.integers(0, 24)),
    st.tuples(st.just("reset_shape"), st.sampled_from([(B + 1,), (1,), (B, 1), ()])),
    st.tuples(st.just("reset_dtype"), st.sampled_from(["float32", "float64"])),
    st.tuples(st.just("keys"), st.sampled_from(["no_tokens", "extra"])),
)


def make_bad_call(kind, mistake, parameter):
    """Returns `(inputs, names)`: invalid inputs and the argument names the error may name."""
    good = tokens(B, 8, seed=3)
    reset = np.zeros(B, bool)
    if mistake == "float_tokens":
        return {"tokens": good.astype(parameter), "reset": reset}, ["tokens"]
    if mistake == "float_tensor":  # a backend tensor: checked by its static dtype
        return {"tokens": ops.convert_to_tensor(good.astype(parameter)), "reset": reset}, ["tokens"]
    if mistake == "out_of_range":
        bad = good.copy()
        bad[1, 5] = parameter
        return {"tokens": bad, "reset": reset}, ["tokens"]
    if mistake == "rank":
        return {"tokens": tokens(1, 8).reshape(parameter)}, ["tokens"]
    if mistake == "batch":
        return {"tokens": tokens(parameter, 8), "reset": np.zeros(parameter, bool)}, ["x", "tokens"]
    if mistake == "length":
        return {"tokens": tokens(B, parameter), "reset": reset}, ["x", "tokens"]
    if mistake == "reset_shape":
        return {"tokens": good, "reset": np.zeros(parameter, bool)}, ["reset"]
    if mistake == "reset_dtype":
        return {"tokens": good, "reset": np.zeros(B, parameter)}, ["reset"]
    if parameter == "no_tokens":
        return {"reset": reset}, ["inputs"]
    return {"tokens": good, "reset": reset, "targets": good}, ["inputs"]


@FAST
@given(kind=st.sampled_from(KINDS), mistake=bad_inputs)
def test_invalid_inputs_name_the_argument_and_keep_the_memory(stateful_models, kind, mistake):
    # A valid length is no mistake (test_valid_calls_are_accepted): draw another example.
    assume(not (mistake[0] == "length" and mistake[1] in valid_lengths(kind)))
    model = stateful_models[kind]
    inputs, names = make_bad_call(kind, *mistake)
    before = memory_of(model)
    assert_rejected(lambda: model(inputs), *names)
    assert memory_of(model) == before


# Every registered kind, and Block-Recurrent feedback, whose stack runs window by window.
EVERY_KIND = (*kind_names(), "feedback")
EMPTY_TOKENS = [
    ((B, 0), rf"`tokens` must have at least 1 token per segment; got shape \({B}, 0\)\."),
    ((0, 8), r"`tokens` must have at least 1 row; got shape \(0, 8\)\."),
]


@pytest.fixture(scope="module")
def every_kind_model():
    """One stateful model per kind, its memory written by one segment."""
    built = {}
    for kind in EVERY_KIND:
        model = make_model(kind, stateful=True)
        model({"tokens": tokens(B, 8, seed=1), "reset": np.ones(B, bool)})
        built[kind] = model
    return built


@pytest.mark.parametrize("as_tensor", [False, True], ids=["numpy", "tensor"])
@pytest.mark.parametrize("shape, message", EMPTY_TOKENS, ids=["no_tokens", "no_rows"])
@pytest.mark.parametrize("kind", EVERY_KIND)
def test_empty_segment_or_batch_names_tokens_and_keeps_the_memory(
    every_kind_model, kind, shape, message, as_tensor
):
    # Each backend failed in its own kernel (division by zero, empty max, bad reshape).
    model = every_kind_model[kind]
    ids = np.zeros(shape, "int32")
    inputs = {"tokens": ops.convert_to_tensor(ids) if as_tensor else ids}
    before = memory_of(model)
    with pytest.raises(ValueError, match=message):
        model(inputs)
    assert memory_of(model) == before


@pytest.mark.parametrize("as_tensor", [False, True], ids=["numpy", "tensor"])
@pytest.mark.parametrize("kind", EVERY_KIND)
def test_empty_input_neither_builds_nor_runs_a_model(kind, as_tensor):
    # Keras builds before `call`: a stateful model would size its memory for 0 rows.
    for stateful in (True, False):
        model = make_model(kind, stateful=stateful)
        for shape, message in EMPTY_TOKENS:
            ids = np.zeros(shape, "int32")
            with pytest.raises(ValueError, match=message):
                model({"tokens": ops.convert_to_tensor(ids) if as_tensor else ids})
            assert not model.built


def test_segment_only_a_later_block_rejects_leaves_every_block_untouched(stateful_models):
    # 12 is a multiple of the window (block 0 reads it) but not a divisor of
    # the memory (block 1 cannot): before the up-front check, block 0 had
    # already written its cache when block 1 raised.
    model = stateful_models["memorizing"]
    before = memory_of(model)
    assert_rejected(lambda: model({"tokens": tokens(B, 12), "reset": np.zeros(B, bool)}), "x")
    assert memory_of(model) == before


@pytest.mark.parametrize("kind", KINDS)
def test_stateful_model_refuses_a_state(stateful_models, kind):
    model = stateful_models[kind]
    before = memory_of(model)
    assert_rejected(lambda: model({"tokens": tokens(B, 8)}, state=[]), "state")
    assert memory_of(model) == before


@FAST
@given(
    kind=st.sampled_from(FUNCTIONAL_KINDS),
    mistake=st.sampled_from(["dict", "short", "long", "missing", "shape", "batch", "not_dict"]),
    block=st.integers(0, 1),
)
def test_invalid_state_names_state(functional_models, kind, mistake, block):
    model, state = functional_models[kind]
    state = [{k: to_numpy(v) for k, v in s.items()} for s in state]
    if mistake == "dict":
        bad = state[0]
    elif mistake == "short":
        bad = state[:1]
    elif mistake == "long":
        bad = [*state, state[0]]
    elif mistake == "not_dict":
        bad = [list(s.values()) if i == block else s for i, s in enumerate(state)]
    else:
        block_state = dict(state[block])
        name = sorted(block_state)[0]
        if mistake == "missing":
            del block_state[name]
        elif mistake == "shape":
            value = block_state[name]
            block_state[name] = np.zeros((*value.shape, 2), value.dtype)
        else:
            block_state = {
                k: np.concatenate([v, v]) if v.ndim else v for k, v in block_state.items()
            }
        bad = [block_state if i == block else s for i, s in enumerate(state)]
    assert_rejected(
        lambda: model({"tokens": tokens(B, 8)}, state=bad),
        "state",
        *(f"state['{k}']" for s in state for k in s),
    )


@FAST
@given(
    kind=st.sampled_from(KINDS),
    length_index=st.integers(0, 1),  # each new length compiles anew: keep two
    dtype=st.sampled_from(["int32", "int64", "uint8"]),
    reset=st.sampled_from(["none", "bool", "int32", "absent"]),
    seed=st.integers(0, 100),
)
def test_valid_calls_are_accepted(stateful_models, kind, length_index, dtype, reset, seed):
    model = stateful_models[kind]
    lengths = valid_lengths(kind)
    length = lengths[length_index % len(lengths)]
    ids = tokens(B, length, seed=seed)
    if dtype == "uint8":
        ids = ids % 256
    inputs = {"tokens": ids.astype(dtype)}
    flags = np.random.default_rng(seed).integers(0, 2, size=B)
    if reset != "absent":
        inputs["reset"] = {"none": None, "bool": flags.astype(bool), "int32": flags}[reset]
    logits = model(inputs)
    assert tuple(logits.shape) == (B, length, VOCAB)


@FAST
@given(kind=st.sampled_from(FUNCTIONAL_KINDS), seed=st.integers(0, 9))
def test_valid_functional_state_is_accepted(functional_models, kind, seed):
    model, state = functional_models[kind]
    numpy_state = [{k: to_numpy(v) for k, v in s.items()} for s in state]
    logits, new_state = model({"tokens": tokens(B, 8, seed=seed)}, state=numpy_state)
    assert tuple(logits.shape) == (B, 8, VOCAB) and len(new_state) == len(state)


@st.composite
def bad_override(draw):
    argument = draw(
        st.sampled_from(
            [
                "num_layers",
                "num_heads",
                "head_dim",
                "window_length",
                "intermediate_dim",
                "vocab_size",
                "hidden_dim",
                "dropout",
                "pad_token_id",
                "memory_size",
                "num_neighbors",
                "num_states",
                "embedding_dim",
            ]
        )
    )
    if argument == "dropout":
        value = draw(st.floats(1.01, 10) | st.floats(-10, -0.01) | st.just("0.1"))
    elif argument == "pad_token_id":
        value = draw(st.integers(-5, -1) | st.integers(VOCAB, VOCAB + 9) | st.just(0.0))
    else:
        value = draw(st.integers(-4, 0) | st.sampled_from([2.5, "4", True]))
    kind = {
        "memory_size": "memorizing",
        "num_neighbors": "memorizing",
        "num_states": "block_recurrent",
    }.get(argument, draw(st.sampled_from(["xl", "melodi", "memorizing_dense"])))
    return kind, argument, value


@FAST
@given(case=bad_override())
def test_bad_preset_overrides_name_the_argument(case):
    kind, argument, value = case
    overrides = {**OVERRIDES, argument: value}
    assert_rejected(lambda: MemoryLM.from_preset("tiny", kind=kind, **overrides), argument)


def kinds_with_option(name):
    return [k for k in kind_names() if name in get_kind(k).option_names()]


@pytest.mark.parametrize(
    "kind", [k for k in kind_names() if k not in kinds_with_option("memory_dropout")]
)
def test_memory_dropout_is_refused_by_name_by_kinds_without_it(kind):
    # Only the Block-Recurrent layer can drop its XL cache per row; the
    # XL attention of other kinds would fail on an unknown keyword.
    with pytest.raises(ValueError) as info:
        MemoryLM.from_preset("tiny", kind=kind, memory_dropout=0.1, **OVERRIDES)
    message = str(info.value)
    assert "`memory_dropout`" in message, message
    assert all(k in message for k in kinds_with_option("memory_dropout")), message


@FAST
@given(
    kind=st.one_of(st.text(max_size=10), st.integers(), st.none()).filter(
        lambda k: (
            k not in ("local", "xl", "memorizing", "memorizing_dense", "block_recurrent", "melodi")
        )
    )
)
def test_unknown_kinds_are_named(kind):
    assert_rejected(lambda: MemoryLM.from_preset("tiny", kind=kind), "kind")


@pytest.mark.parametrize("preset", [None, 3, ["tiny"], "huge"])
def test_unknown_presets_are_named(preset):
    with pytest.raises(ValueError, match="preset"):
        MemoryLM.from_preset(preset)


def test_stateful_flag_must_be_a_bool():
    assert_rejected(lambda: MemoryLM.from_preset("tiny", stateful="yes", **OVERRIDES), "stateful")
