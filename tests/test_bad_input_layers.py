"""Bad input to every public layer: a clear error naming the argument, memory untouched.

Property-based (hypothesis) over shapes, dtypes and flags. Every invalid
call must raise ValueError or TypeError whose message names the offending
argument, never crash inside a backend kernel, and leave a stateful layer's
memory bit-identical; valid calls drawn from the same spaces must not raise.
The layers are built once per module and reused across examples.
"""

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from keras_memory import layers
from keras_memory.memories import kind_names
from keras_memory.models import make_blocks
from tests.conftest import to_numpy

B, HIDDEN, HEADS, HEAD_DIM, W = 2, 8, 2, 4, 4  # the sizes of tests/layers
MEMORY = 16  # kNN / dense-KV memory: segments of 1, 2, 4, 8 or 16 tokens fit.
SUMMARY = 2  # Melodi: a segment packs n * (W + SUMMARY) tokens.
MAX_LENGTH = 24

FAST = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

ATTENTION = dict(num_heads=HEADS, head_dim=HEAD_DIM)
MELODI = dict(
    num_heads=HEADS,
    head_dim=HEAD_DIM,
    window_length=W,
    intermediate_dim=8,
    summary_size=SUMMARY,
    short_term_memory_size=SUMMARY,
    long_term_memory_size=4,
    long_term_increment=2,
)


def make_memory_layer(kind, stateful):
    if kind == "xl":
        return layers.XLAttention(window_length=W, stateful=stateful, **ATTENTION)
    if kind == "knn":
        return layers.KNNAttention(
            window_length=W, memory_size=MEMORY, num_neighbors=2, stateful=stateful, **ATTENTION
        )
    if kind == "dense_kv":
        return layers.DenseKVAttention(memory_size=MEMORY, stateful=stateful, **ATTENTION)
    if kind == "block_recurrent":
        return layers.BlockRecurrentAttention(
            window_length=W, num_states=2, stateful=stateful, **ATTENTION
        )
    if kind == "block":
        attention = layers.XLAttention(window_length=W, stateful=stateful, **ATTENTION)
        return layers.TransformerBlock(attention, intermediate_dim=8)
    return layers.MelodiLayer(stateful=stateful, **MELODI)


KINDS = ("xl", "knn", "dense_kv", "block_recurrent", "block", "melodi")


def valid_lengths(kind):
    """Segment lengths up to MAX_LENGTH that the layer reads."""
    if kind == "melodi":
        return [n * (W + SUMMARY) for n in range(1, 5)]
    if kind == "knn":
        return [n for n in range(W, MAX_LENGTH + 1, W) if MEMORY % n == 0]
    if kind == "dense_kv":
        return [n for n in range(1, MAX_LENGTH + 1) if MEMORY % n == 0]
    return list(range(W, MAX_LENGTH + 1, W))


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


@pytest.fixture(scope="module")
def stateful_layers():
    """Stateful layers built for batch B, each with a memory written by one segment."""
    built = {}
    for kind in KINDS:
        layer = make_memory_layer(kind, stateful=True)
        length = valid_lengths(kind)[0]
        layer(randn(B, length, HIDDEN, seed=1), reset=np.ones(B, bool))
        built[kind] = layer
    return built


@pytest.fixture(scope="module")
def functional_layers():
    built = {}
    for kind in KINDS:
        layer = make_memory_layer(kind, stateful=False)
        layer(randn(B, valid_lengths(kind)[0], HIDDEN))
        built[kind] = layer
    return built


def memory_of(layer):
    return {name: to_numpy(value).tobytes() for name, value in layer.read_state().items()}


def assert_rejected(call, *names):
    """`call()` raises ValueError/TypeError whose message names one of `names`."""
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    message = str(info.value)
    assert any(f"`{name}`" in message for name in names), message
    return message


# Invalid `x` for a stateful layer: (kind of mistake, its parameters).
bad_x = st.one_of(
    st.tuples(
        st.just("rank"),
        st.lists(st.integers(1, 5), min_size=1, max_size=4).filter(lambda s: len(s) != 3),
    ),
    st.tuples(st.just("width"), st.integers(1, 40).filter(lambda d: d != HIDDEN)),
    st.tuples(st.just("length"), st.integers(0, MAX_LENGTH)),
    st.tuples(st.just("batch"), st.integers(0, 5).filter(lambda b: b != B)),
    st.tuples(st.just("dtype"), st.sampled_from(["int32", "int64", "bool", "uint8"])),
)


def make_bad_x(kind, mistake, parameter):
    length = valid_lengths(kind)[0]
    if mistake == "rank":
        return randn(*parameter)
    if mistake == "width":
        return randn(B, length, parameter)
    if mistake == "length":
        return randn(B, parameter, HIDDEN)
    if mistake == "batch":
        return randn(parameter, length, HIDDEN)
    return np.ones((B, length, HIDDEN), parameter)


@FAST
@given(kind=st.sampled_from(KINDS), mistake=bad_x)
def test_invalid_x_names_x_and_keeps_the_memory(stateful_layers, kind, mistake):
    # A valid length is no mistake (test_valid_inputs_are_accepted): draw another example.
    assume(not (mistake[0] == "length" and mistake[1] in valid_lengths(kind)))
    layer = stateful_layers[kind]
    x = make_bad_x(kind, *mistake)
    before = memory_of(layer)
    assert_rejected(lambda: layer(x, reset=np.zeros(x.shape[:1], bool)), "x")
    assert memory_of(layer) == before


def empty_x_cases(length):
    """`(x, message)`: a segment with no tokens and a batch with no rows, and what they raise."""
    no_tokens, no_rows = (B, 0, HIDDEN), (0, length, HIDDEN)
    return [
        (
            randn(*no_tokens),
            rf"`x` must have at least 1 token per segment; got shape \({B}, 0, {HIDDEN}\)\.",
        ),
        (randn(*no_rows), rf"`x` must have at least 1 row; got shape \(0, {length}, {HIDDEN}\)\."),
    ]


def assert_empty_x_rejected(layer, length, **call_options):
    """Both empty inputs raise ValueError naming `x`; a stateful layer's memory is untouched."""
    for x, message in empty_x_cases(length):
        before = memory_of(layer)
        with pytest.raises(ValueError, match=message):
            layer(x, reset=np.zeros(x.shape[:1], bool), **call_options)
        assert memory_of(layer) == before


@pytest.mark.parametrize("kind", KINDS)
def test_empty_segment_or_batch_names_x_and_keeps_the_memory(stateful_layers, kind):
    # Each backend failed in its own kernel (division by zero, empty max, bad reshape).
    assert_empty_x_rejected(stateful_layers[kind], valid_lengths(kind)[0])


@pytest.mark.parametrize("kind", KINDS)
def test_empty_segment_or_batch_names_x_in_a_functional_call(functional_layers, kind):
    layer = functional_layers[kind]
    assert_empty_x_rejected(layer, valid_lengths(kind)[0], state=layer.initial_state(B))


@pytest.mark.parametrize("kind", KINDS)
def test_empty_input_does_not_build_a_stateful_layer(kind):
    # Keras builds before `call`: the memory would be sized for 0 rows.
    layer = make_memory_layer(kind, stateful=True)
    for x, message in empty_x_cases(valid_lengths(kind)[0]):
        with pytest.raises(ValueError, match=message):
            layer(x)
        assert not layer.built


@pytest.mark.parametrize("kind", kind_names())
def test_every_kinds_blocks_reject_an_empty_segment_or_batch(kind):
    blocks = make_blocks(
        kind,
        num_layers=2,
        num_heads=HEADS,
        head_dim=HEAD_DIM,
        intermediate_dim=8,
        window_length=W,
        stateful=True,
        memory_size=MEMORY,
        num_neighbors=2,
        num_states=2,
        summary_size=SUMMARY,
        short_term_memory_size=SUMMARY,
        long_term_memory_size=4,
        long_term_increment=2,
    )
    for block in blocks:
        # A Melodi block reads each window's tokens packed with its summary tokens.
        length = W + SUMMARY if isinstance(block, layers.MelodiLayer) else W
        block(randn(B, length, HIDDEN, seed=1), reset=np.ones(B, bool))
        assert_empty_x_rejected(block, length)


bad_reset = st.one_of(
    st.tuples(st.just("length"), st.integers(0, 5).filter(lambda n: n != B)),
    st.tuples(st.just("rank"), st.sampled_from([(), (B, 1), (1, B), (B, B)])),
    st.tuples(st.just("dtype"), st.sampled_from(["float32", "float64", "float16"])),
)


def make_bad_reset(mistake, parameter):
    if mistake == "length":
        return np.ones((parameter,), bool)
    if mistake == "rank":
        return np.ones(parameter, bool)
    return np.ones((B,), parameter)


@FAST
@given(kind=st.sampled_from(KINDS), mistake=bad_reset)
def test_invalid_reset_names_reset_and_keeps_the_memory(stateful_layers, kind, mistake):
    layer = stateful_layers[kind]
    x = randn(B, valid_lengths(kind)[0], HIDDEN)
    before = memory_of(layer)
    assert_rejected(lambda: layer(x, reset=make_bad_reset(*mistake)), "reset")
    assert memory_of(layer) == before


@pytest.mark.parametrize("kind", KINDS)
def test_stateful_layer_refuses_a_state_and_keeps_the_memory(stateful_layers, kind):
    layer = stateful_layers[kind]
    x = randn(B, valid_lengths(kind)[0], HIDDEN)
    before = memory_of(layer)
    assert_rejected(lambda: layer(x, state=layer.initial_state(B)), "state")
    assert memory_of(layer) == before


def corrupt_state(state, mistake, index, rng_seed):
    """A copy of `state` (numpy) with one mistake in entry `index` (mod the entry count)."""
    state = {name: to_numpy(value) for name, value in state.items()}
    names = sorted(state)
    name = names[index % len(names)]
    if mistake == "missing":
        del state[name]
    elif mistake == "extra":
        state["unexpected"] = np.zeros((B,), "float32")
    elif mistake == "shape":
        value = state[name]
        shape = list(value.shape) or [1]
        axis = rng_seed % len(shape)
        shape[axis] += 1 + rng_seed % 3
        state[name] = np.zeros(shape, value.dtype)
    elif mistake == "rank":
        state[name] = state[name][..., None]
    elif mistake == "dtype":
        value = state[name]
        other = "int32" if np.issubdtype(value.dtype, np.floating) else "float32"
        state[name] = value.astype(other)
    elif mistake == "not_a_dict":
        return [state[n] for n in names]
    return state


state_mistakes = st.sampled_from(["missing", "extra", "shape", "rank", "dtype", "not_a_dict"])


@FAST
@given(
    kind=st.sampled_from(KINDS),
    mistake=state_mistakes,
    index=st.integers(0, 7),
    seed=st.integers(0, 10),
)
def test_invalid_state_dict_names_state(functional_layers, kind, mistake, index, seed):
    layer = functional_layers[kind]
    x = randn(B, valid_lengths(kind)[0], HIDDEN)
    state = corrupt_state(layer.initial_state(B), mistake, index, seed)
    entries = [f"state['{name}']" for name in layer.state_shapes(B)]
    assert_rejected(lambda: layer(x, state=state), "state", *entries)


@FAST
@given(
    kind=st.sampled_from(KINDS),
    mistake=state_mistakes.filter(lambda m: m != "not_a_dict"),
    index=st.integers(0, 7),
    seed=st.integers(0, 10),
)
def test_write_state_checks_the_whole_dict_before_writing(
    stateful_layers, kind, mistake, index, seed
):
    layer = stateful_layers[kind]
    state = corrupt_state(layer.read_state(), mistake, index, seed)
    before = memory_of(layer)
    with pytest.raises((ValueError, TypeError)) as info:
        layer.write_state(state)
    assert "state" in str(info.value)
    assert memory_of(layer) == before


@FAST
@given(
    kind=st.sampled_from(KINDS),
    length_index=st.integers(0, 1),  # each new length compiles anew: keep two
    reset=st.sampled_from(["none", "bool", "int32", "list"]),
    dtype=st.sampled_from(["float32", "float64", "float16"]),
    seed=st.integers(0, 100),
)
def test_valid_inputs_are_accepted(stateful_layers, kind, length_index, reset, dtype, seed):
    layer = stateful_layers[kind]
    lengths = valid_lengths(kind)
    length = lengths[length_index % len(lengths)]
    x = randn(B, length, HIDDEN, seed=seed).astype(dtype)
    flags = np.random.default_rng(seed).integers(0, 2, size=B)
    reset_value = {
        "none": None,
        "bool": flags.astype(bool),
        "int32": flags.astype("int32"),
        "list": [bool(f) for f in flags],
    }[reset]
    y = layer(x, reset=reset_value)
    assert tuple(y.shape) == (B, length, HIDDEN)


@FAST
@given(kind=st.sampled_from(KINDS), length_index=st.integers(0, 1))
def test_valid_functional_calls_are_accepted(functional_layers, kind, length_index):
    layer = functional_layers[kind]
    lengths = valid_lengths(kind)
    length = lengths[length_index % len(lengths)]
    x = randn(B, length, HIDDEN)
    _, state = layer(x, reset=np.ones(B, bool))
    y, _ = layer(x, state={k: to_numpy(v) for k, v in state.items()})
    assert tuple(y.shape) == (B, length, HIDDEN)


# Constructor arguments: (argument, kind of value). Kinds map to bad values below.
SIZE, COUNT, FLAG, FRACTION, POSITIVE = "size", "count", "flag", "fraction", "positive"

CONSTRUCTORS = {
    "XLAttention": (
        lambda **kw: layers.XLAttention(**{**ATTENTION, "window_length": W, **kw}),
        {
            "num_heads": SIZE,
            "head_dim": SIZE,
            "window_length": SIZE,
            "num_position_buckets": SIZE,
            "compressed_memory_size": COUNT,
            "num_registers": COUNT,
            "use_cache": FLAG,
            "include_self": FLAG,
            "normalize_keys": FLAG,
            "use_position_bias": FLAG,
            "read_recurrent_state": FLAG,
            "stateful": FLAG,
            "rotary": ("standard", "reversed", None),
            "rotary_base": POSITIVE,
            "kernel_initializer": "initializer",
        },
    ),
    "KNNAttention": (
        lambda **kw: layers.KNNAttention(**{**ATTENTION, "window_length": W, **kw}),
        {
            "memory_size": SIZE,
            "num_neighbors": SIZE,
            "chunk_size": SIZE,
            "retrieval": ("exact", "bucketed", "approx", "scann", None),
            "memory_placement": ("device", "host"),
        },
    ),
    "DenseKVAttention": (
        lambda **kw: layers.DenseKVAttention(**{**ATTENTION, **kw}),
        {"memory_size": SIZE, "include_self": FLAG, "head_dim": SIZE},
    ),
    "BlockRecurrentAttention": (
        lambda **kw: layers.BlockRecurrentAttention(**{**ATTENTION, "window_length": W, **kw}),
        {
            "num_states": SIZE,
            "gate": ("fixed", "lstm"),
            "variant": ("skip", "dual", "single"),
            "state_dropout": FRACTION,
            "memory_dropout": FRACTION,
        },
    ),
    "MelodiLayer": (
        lambda **kw: layers.MelodiLayer(**{**MELODI, **kw}),
        {
            "num_heads": SIZE,
            "window_length": SIZE,
            "intermediate_dim": SIZE,
            "summary_size": SIZE,
            "short_term_memory_size": COUNT,
            "long_term_memory_size": COUNT,
            "dropout": FRACTION,
            "epsilon": POSITIVE,
            "activation": "activation",
            "normalize_keys": FLAG,
            "stateful": FLAG,
        },
    ),
    "TransformerBlock": (
        lambda **kw: layers.TransformerBlock(
            **{
                "attention": layers.XLAttention(window_length=W, **ATTENTION),
                "intermediate_dim": 8,
                **kw,
            }
        ),
        {
            "intermediate_dim": SIZE,
            "dropout": FRACTION,
            "epsilon": POSITIVE,
            "activation": "activation",
            "attention": "attention",
        },
    ),
    "FeedForward": (
        lambda **kw: layers.FeedForward(**{"intermediate_dim": 8, **kw}),
        {
            "intermediate_dim": SIZE,
            "dropout": FRACTION,
            "activation": "activation",
            "kernel_initializer": "initializer",
        },
    ),
    "TokenMixing": (
        lambda **kw: layers.TokenMixing(**{"output_size": 2, **kw}),
        {"output_size": SIZE, "use_norm_and_residual": FLAG, "epsilon": POSITIVE},
    ),
    "RelativePositionBias": (
        lambda **kw: layers.RelativePositionBias(**{"num_heads": HEADS, **kw}),
        {"num_heads": SIZE, "num_buckets": SIZE, "max_distance": SIZE, "bidirectional": FLAG},
    ),
}

# Built once: creating layers inside a strategy draws from `random`.
NOT_A_MEMORY_LAYER = layers.FeedForward(8)
ATTENTION_LAYER = layers.XLAttention(window_length=W, **ATTENTION)
WRONG_TYPES = st.sampled_from(["3", None, [2], 2.5, True, False, float("nan")])
BAD_VALUES = {
    SIZE: st.one_of(st.integers(-100, 0), WRONG_TYPES),
    COUNT: st.one_of(st.integers(-100, -1), WRONG_TYPES),
    FLAG: st.one_of(st.sampled_from(["yes", "", "False", 0, 1, None, 1.0]), st.text(max_size=3)),
    FRACTION: st.one_of(
        st.floats(1.0001, 1e6), st.floats(-1e6, -0.0001), st.sampled_from(["0.1", None, [0.1]])
    ),
    POSITIVE: st.one_of(st.floats(-1e6, 0.0), st.sampled_from(["1", None, float("nan")])),
    "activation": st.sampled_from(["nope", "swiglu2", "", "relu ", 3, 2.5]),
    "initializer": st.sampled_from(["nope", "", 3, 2.5]),
    "attention": st.sampled_from(["xl", None, 3, NOT_A_MEMORY_LAYER]),
}


def bad_value(kind):
    if isinstance(kind, tuple):  # an option string: anything not in the tuple
        return st.one_of(st.text(max_size=8), st.integers(), st.none()).filter(
            lambda v: v not in kind
        )
    return BAD_VALUES[kind]


@st.composite
def bad_constructor_argument(draw):
    layer = draw(st.sampled_from(sorted(CONSTRUCTORS)))
    make, arguments = CONSTRUCTORS[layer]
    argument = draw(st.sampled_from(sorted(arguments)))
    return layer, make, argument, draw(bad_value(arguments[argument]))


@settings(FAST, max_examples=60)
@given(case=bad_constructor_argument())
def test_bad_constructor_arguments_name_the_argument(case):
    _, make, argument, value = case
    assert_rejected(lambda: make(**{argument: value}), argument)


VALID_VALUES = {
    SIZE: st.integers(1, 8),
    COUNT: st.integers(0, 8),
    FLAG: st.booleans(),
    FRACTION: st.floats(0.0, 1.0),
    POSITIVE: st.floats(1e-6, 1e3),
    "activation": st.sampled_from(["relu", "gelu", "silu", "swiglu", "geglu"]),
    "initializer": st.sampled_from(["glorot_uniform", "zeros", "he_normal"]),
    "attention": st.just(ATTENTION_LAYER),
}
# Arguments whose valid range depends on the other (default) arguments.
VALID_OVERRIDES = {
    ("XLAttention", "num_position_buckets"): st.integers(2, 64),
    ("RelativePositionBias", "num_buckets"): st.integers(2, 64),
    ("RelativePositionBias", "max_distance"): st.integers(17, 500),
    ("KNNAttention", "memory_size"): st.integers(32, 64),
    ("KNNAttention", "retrieval"): st.sampled_from(["exact", "bucketed", "approx"]),
    ("MelodiLayer", "long_term_memory_size"): st.sampled_from([0, 2, 3, 8]),
}


@FAST
@given(data=st.data())
def test_valid_constructor_arguments_are_accepted(data):
    # One argument at a time within its range, the others at their defaults;
    # combinations a layer forbids are in test_coupled_arguments_are_checked_together.
    layer = data.draw(st.sampled_from(sorted(CONSTRUCTORS)))
    make, arguments = CONSTRUCTORS[layer]
    argument = data.draw(st.sampled_from(sorted(arguments)))
    kind = arguments[argument]
    if (layer, argument) in VALID_OVERRIDES:
        value = data.draw(VALID_OVERRIDES[layer, argument])
    elif isinstance(kind, tuple):
        value = data.draw(st.sampled_from(kind))
    else:
        value = data.draw(VALID_VALUES[kind])
    assert isinstance(make(**{argument: value}), keras.layers.Layer)


def test_coupled_arguments_are_checked_together():
    assert_rejected(
        lambda: layers.XLAttention(2, 4, 4, num_registers=2, use_cache=False), "num_registers"
    )
    assert_rejected(
        lambda: layers.XLAttention(2, 4, 6, compressed_memory_size=4, compression_rate=4),
        "window_length",
    )
    assert_rejected(lambda: layers.XLAttention(2, 3, 4, rotary="standard"), "head_dim")
    assert_rejected(
        lambda: layers.XLAttention(2, 4, 4, num_position_buckets=32, max_position_distance=16),
        "max_position_distance",
    )
    assert_rejected(
        lambda: layers.RelativePositionBias(2, num_buckets=2, bidirectional=True), "num_buckets"
    )
    assert_rejected(
        lambda: layers.KNNAttention(2, 4, 4, memory_size=4, num_neighbors=8), "num_neighbors"
    )
    assert_rejected(
        lambda: layers.MelodiLayer(**{**MELODI, "long_term_increment": 8}), "long_term_increment"
    )
    layers.XLAttention(2, 4, 4, num_registers=2, compressed_memory_size=4, rotary="reversed")
    layers.RelativePositionBias(2, num_buckets=4, max_distance=3, bidirectional=True)


@pytest.fixture(scope="module")
def feed_forward():
    layer = layers.FeedForward(8)
    layer(randn(B, 4, HIDDEN))
    return layer


@FAST
@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=4),
    width=st.integers(1, 24),
)
def test_feed_forward_checks_the_width(feed_forward, shape, width):
    x = randn(*shape, width)
    if width == HIDDEN:
        assert tuple(feed_forward(x).shape) == x.shape
    else:
        assert_rejected(lambda: feed_forward(x), "x")


@pytest.fixture(scope="module")
def token_mixing():
    layer = layers.TokenMixing(SUMMARY)
    layer(randn(B, W, HIDDEN), randn(B, SUMMARY, HIDDEN))
    return layer


@FAST
@given(
    context=st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(1, 20)),
    summary=st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 20)),
    drop_rank=st.sampled_from([None, "context", "summary"]),
)
def test_token_mixing_checks_both_inputs(token_mixing, context, summary, drop_rank):
    c, s = randn(*context), randn(*summary)
    if drop_rank == "context":
        c = c[0]
    elif drop_rank == "summary":
        s = s[0]
    valid = (
        drop_rank is None
        and context[1:] == (W, HIDDEN)
        and summary[1:] == (SUMMARY, HIDDEN)
        and context[0] == summary[0]
    )
    if valid:
        assert tuple(token_mixing(c, s).shape) == (context[0], SUMMARY, HIDDEN)
    else:
        assert_rejected(lambda: token_mixing(c, s), "context", "summary")


@pytest.fixture(scope="module")
def position_bias():
    layer = layers.RelativePositionBias(HEADS, num_buckets=8, max_distance=16)
    layer.build()
    return layer


sizes = st.one_of(st.integers(-3, 12), st.sampled_from([2.0, "4", None]))


@FAST
@given(num_queries=sizes, num_keys=sizes)
def test_position_bias_checks_its_sizes(position_bias, num_queries, num_keys):
    def valid(n):
        return isinstance(n, int) and n >= 1

    if valid(num_queries) and valid(num_keys) and num_keys >= num_queries:
        bias = position_bias(num_queries=num_queries, num_keys=num_keys)
        assert tuple(bias.shape) == (HEADS, num_queries, num_keys)
    else:
        assert_rejected(
            lambda: position_bias(num_queries=num_queries, num_keys=num_keys),
            "num_queries",
            "num_keys",
        )


def test_unbuilt_layer_rejects_a_wrong_rank_before_building():
    layer = layers.XLAttention(window_length=W, stateful=True, **ATTENTION)
    assert_rejected(lambda: layer(randn(W, HIDDEN)), "x")
    assert not layer.built
    y = layer(randn(B, W, HIDDEN))
    assert tuple(y.shape) == (B, W, HIDDEN)


def test_symbolic_inputs_are_checked_by_static_shape():
    # In a functional Keras model the checks see the static shapes only.
    layer = layers.XLAttention(window_length=W, stateful=True, **ATTENTION)
    x = keras.Input((None, HIDDEN), batch_size=B)
    y = layer(x)
    assert tuple(y.shape) == (B, None, HIDDEN)
    assert_rejected(lambda: layer(keras.Input((W, HIDDEN + 1), batch_size=B)), "x")


@pytest.mark.parametrize("kind", ["knn", "dense_kv"])
def test_segments_of_varying_length_never_write_past_the_memory(kind):
    # Lengths 4, 8, 8 with a memory of 16: the third block would start at 12
    # and run past the end (torch raised IndexError; JAX and TensorFlow
    # clamped the write onto the wrong entries). It starts over at 0.
    layer = make_memory_layer(kind, stateful=True)
    for length in (4, 8, 8):
        layer(randn(B, length, HIDDEN, seed=length), reset=np.zeros(B, bool))
    state = {name: to_numpy(value) for name, value in layer.read_state().items()}
    assert int(state["memory_pointer"]) == 8
    np.testing.assert_array_equal(state["memory_valid"][:, :12], 1)
    np.testing.assert_array_equal(state["memory_valid"][:, 12:], 0)
