"""Every public layer and model at a tiny size, run on fixed weights and inputs.

`REGISTRY` maps an entry name to an `Entry`: the public names it covers (a
layer class, or a model class and its kind) and a `run(rng)` that builds the
object, assigns every weight from `rng` in `obj.weights` order, feeds it
inputs drawn from `rng` and returns a dict of numpy arrays:

- `class`: the class of the object run, one of the names it covers;
- `weight_shapes`: every weight's path, shape and dtype, in assignment
  order: when they agree between backends, so do the weights;
- `segment_0`, `segment_1`: outputs. Memory layers and models read two
  consecutive segments carrying their state: on the first every row starts
  a document; on the second row 0 continues it and row 1 starts a new one
  (`RESETS`);
- `state/...`: the state after the second segment, one array per tensor.

`python -m tests.parity_registry OUT.npz` runs the whole registry on the
current `KERAS_BACKEND` and saves every array as `"<entry>::<array>"`; an
entry that raises saves its traceback as `"<entry>::error"` instead.
`tests/test_backend_parity.py` compares the backends' files.
"""

import dataclasses
import sys
import traceback
import zlib
from collections.abc import Callable

import keras
import numpy as np

from keras_memory import layers
from keras_memory.models import MemoryLM, RetrofitLM

SEPARATOR = "::"  # between an entry's name and an array's name in the saved file
BATCH = 2
HIDDEN = 16
NUM_HEADS = 2
HEAD_DIM = 8
INTERMEDIATE = 32
WINDOW = 8
SEGMENT = 2 * WINDOW
SUMMARY = 4  # Melodi summary tokens per window
VOCAB = 259
WEIGHT_STDDEV = 0.5
# Segment 0: both rows start a document; segment 1: row 0 continues, row 1 restarts.
RESETS = (np.array([True, True]), np.array([False, True]))
# The tiny model sizes; each kind reads the options it knows.
MODEL_SIZES = dict(
    vocab_size=VOCAB,
    hidden_dim=HIDDEN,
    num_layers=2,
    num_heads=NUM_HEADS,
    head_dim=HEAD_DIM,
    intermediate_dim=INTERMEDIATE,
    window_length=WINDOW,
    memory_size=2 * SEGMENT,
    num_neighbors=4,
    num_states=8,
    summary_size=SUMMARY,
    short_term_memory_size=SUMMARY,
    long_term_memory_size=2 * SEGMENT,
    long_term_increment=2,
)


@dataclasses.dataclass(frozen=True)
class Entry:
    """A registry entry: the public names it covers and how to run it."""

    covers: tuple  # layer class names, or a model class name and its kind
    run: Callable[[np.random.Generator], dict]


def features(rng, length=SEGMENT):
    return rng.normal(size=(BATCH, length, HIDDEN)).astype("float32")


def tokens(rng):
    return rng.integers(3, VOCAB, size=(BATCH, SEGMENT)).astype("int32")


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def assign_weights(obj, rng):
    """Draws every float weight of the built `obj` from `rng`; returns what it did."""
    described = []
    for weight in obj.weights:
        dtype = keras.backend.standardize_dtype(weight.dtype)
        described.append(f"{weight.path} {tuple(weight.shape)} {dtype}")
        if "float" in dtype:
            weight.assign(rng.normal(0.0, WEIGHT_STDDEV, weight.shape).astype(dtype))
    return {"class": np.array(type(obj).__name__), "weight_shapes": np.array(described)}


def state_arrays(state, prefix="state"):
    """Flattens a state (a dict of tensors, or a list of them) to named numpy arrays."""
    items = state.items() if isinstance(state, dict) else enumerate(state)
    arrays = {}
    for key, value in items:
        if isinstance(value, (dict, list, tuple)):
            arrays.update(state_arrays(value, f"{prefix}/{key}"))
        else:
            arrays[f"{prefix}/{key}"] = to_numpy(value)
    return arrays


def run_memory_layer(layer, rng, length=SEGMENT):
    """Two segments through `y, state = layer(x, state=state, reset=reset)`."""
    inputs = [features(rng, length) for _ in RESETS]
    layer(inputs[0], reset=RESETS[0])  # builds it
    arrays = assign_weights(layer, rng)
    state = None
    for i, (x, reset) in enumerate(zip(inputs, RESETS)):
        y, state = layer(x, state=state, reset=reset)
        arrays[f"segment_{i}"] = to_numpy(y)
    return {**arrays, **state_arrays(state)}


def run_model(model, rng):
    """Two segments through `logits, state = model({"tokens", "reset"}, state=state)`."""
    inputs = [tokens(rng) for _ in RESETS]
    model({"tokens": inputs[0], "reset": RESETS[0]})  # builds it
    arrays = assign_weights(model, rng)
    state = None
    for i, (ids, reset) in enumerate(zip(inputs, RESETS)):
        logits, state = model({"tokens": ids, "reset": reset}, state=state)
        arrays[f"segment_{i}"] = to_numpy(logits)
    return {**arrays, **state_arrays(state)}


def memory_layer(make, length=SEGMENT):
    """The run of the memory layer `make()` returns, on segments of `length`."""
    return lambda rng: run_memory_layer(make(), rng, length)


def xl_attention(**options):
    return memory_layer(
        lambda: layers.XLAttention(NUM_HEADS, HEAD_DIM, WINDOW, name="attention", **options)
    )


def knn_attention(**options):
    return memory_layer(
        lambda: layers.KNNAttention(
            NUM_HEADS,
            HEAD_DIM,
            WINDOW,
            memory_size=2 * SEGMENT,
            num_neighbors=4,
            name="attention",
            **options,
        )
    )


def block_recurrent_attention(**options):
    return memory_layer(
        lambda: layers.BlockRecurrentAttention(
            NUM_HEADS, HEAD_DIM, WINDOW, num_states=8, name="attention", **options
        )
    )


def accumulating_dense(rng):
    layer = layers.AccumulatingDense(INTERMEDIATE, activation="gelu", name="dense")
    x = features(rng)
    layer(x)
    return {**assign_weights(layer, rng), "segment_0": to_numpy(layer(x))}


def feed_forward(activation):
    def run(rng):
        layer = layers.FeedForward(INTERMEDIATE, activation=activation, name="ffn")
        x = features(rng)
        layer(x)
        return {**assign_weights(layer, rng), "segment_0": to_numpy(layer(x))}

    return run


def token_mixing(use_norm_and_residual):
    def run(rng):
        layer = layers.TokenMixing(
            SUMMARY if use_norm_and_residual else 3,
            use_norm_and_residual=use_norm_and_residual,
            name="mixing",
        )
        context, summary = features(rng, WINDOW), features(rng, SUMMARY)
        layer(context, summary)
        return {**assign_weights(layer, rng), "segment_0": to_numpy(layer(context, summary))}

    return run


def relative_position_bias(rng):
    layer = layers.RelativePositionBias(NUM_HEADS, num_buckets=8, max_distance=16, name="bias")
    layer.build()
    return {
        **assign_weights(layer, rng),
        "window": to_numpy(layer(num_queries=WINDOW, num_keys=2 * WINDOW)),
        "offset": to_numpy(layer(num_queries=WINDOW, num_keys=3 * WINDOW, offset=4)),
    }


def memory_lm(kind, **options):
    return lambda rng: run_model(
        MemoryLM.from_preset("tiny", kind=kind, **{**MODEL_SIZES, **options}), rng
    )


def retrofit_lm(rng):
    import keras_hub  # imported on use: it pulls in TensorFlow Text

    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=VOCAB,
        num_layers=2,
        num_heads=NUM_HEADS,
        hidden_dim=HIDDEN,
        intermediate_dim=INTERMEDIATE,
        dropout=0.0,
        max_sequence_length=SEGMENT,
    )
    model = RetrofitLM(
        backbone,
        memory_size=2 * SEGMENT,
        num_neighbors=4,
        window_length=WINDOW,
        name="retrofit_lm",
    )
    return run_model(model, rng)


REGISTRY = {
    "BlockRecurrentAttention": Entry(("BlockRecurrentAttention",), block_recurrent_attention()),
    "BlockRecurrentAttention/lstm_dual": Entry(
        ("BlockRecurrentAttention",),
        block_recurrent_attention(gate="lstm", variant="dual", state_intermediate_dim=32),
    ),
    "BlockRecurrentAttention/single": Entry(
        ("BlockRecurrentAttention",),
        block_recurrent_attention(variant="single", state_intermediate_dim=32),
    ),
    "DenseKVAttention": Entry(
        ("DenseKVAttention",),
        memory_layer(
            lambda: layers.DenseKVAttention(
                NUM_HEADS, HEAD_DIM, memory_size=2 * SEGMENT, name="attention"
            )
        ),
    ),
    "AccumulatingDense": Entry(("AccumulatingDense",), accumulating_dense),
    "FeedForward": Entry(("FeedForward",), feed_forward("gelu")),
    "FeedForward/swiglu": Entry(("FeedForward",), feed_forward("swiglu")),
    # Chunks smaller than the memory: the exact search merges per-chunk top-k.
    "KNNAttention": Entry(("KNNAttention",), knn_attention(chunk_size=SEGMENT)),
    "KNNAttention/bucketed": Entry(("KNNAttention",), knn_attention(retrieval="bucketed")),
    # With a long-term memory, and a short-term memory of another size than
    # the summary (mixed without residual); MelodiLM/melodi has the other case.
    "MelodiLayer": Entry(
        ("MelodiLayer",),
        memory_layer(
            lambda: layers.MelodiLayer(
                NUM_HEADS,
                HEAD_DIM,
                WINDOW,
                INTERMEDIATE,
                summary_size=SUMMARY,
                short_term_memory_size=SUMMARY + 2,
                long_term_memory_size=2 * SEGMENT,
                long_term_increment=2,
                name="melodi",
            ),
            length=(SEGMENT // WINDOW) * (WINDOW + SUMMARY),
        ),
    ),
    "RelativePositionBias": Entry(("RelativePositionBias",), relative_position_bias),
    "TokenMixing": Entry(("TokenMixing",), token_mixing(use_norm_and_residual=True)),
    "TokenMixing/no_residual": Entry(("TokenMixing",), token_mixing(use_norm_and_residual=False)),
    "TransformerBlock": Entry(
        ("TransformerBlock",),
        memory_layer(
            lambda: layers.TransformerBlock(
                layers.XLAttention(NUM_HEADS, HEAD_DIM, WINDOW, name="attention"),
                INTERMEDIATE,
                name="block",
            )
        ),
    ),
    "XLAttention": Entry(("XLAttention",), xl_attention()),
    "XLAttention/local": Entry(("XLAttention",), xl_attention(use_cache=False, include_self=True)),
    # The LSW Transformer's attention.
    "XLAttention/rotary_reversed_registers": Entry(
        ("XLAttention",),
        xl_attention(
            rotary="reversed",
            rotary_base=500000.0,
            num_registers=2,
            use_position_bias=False,
            normalize_keys=False,
        ),
    ),
    "XLAttention/rotary_compressed": Entry(
        ("XLAttention",),
        xl_attention(rotary="standard", compressed_memory_size=8, compression_rate=4),
    ),
    **{
        f"MemoryLM/{kind}": Entry(("MemoryLM", kind), memory_lm(kind))
        for kind in ("local", "xl", "memorizing", "memorizing_dense", "block_recurrent")
    },
    # Layers that read the recurrent state: the stack runs window by window.
    "MemoryLM/block_recurrent_feedback": Entry(
        ("MemoryLM", "block_recurrent"), memory_lm("block_recurrent", feedback=True)
    ),
    # Grouped queries: one key/value head in the caches, the kNN memory and the state.
    "MemoryLM/memorizing_grouped": Entry(
        ("MemoryLM", "memorizing"), memory_lm("memorizing", num_key_value_heads=1)
    ),
    "MemoryLM/block_recurrent_feedback_grouped": Entry(
        ("MemoryLM", "block_recurrent"),
        memory_lm("block_recurrent", feedback=True, num_key_value_heads=1),
    ),
    "MelodiLM/melodi": Entry(("MelodiLM", "melodi"), memory_lm("melodi")),
    "RetrofitLM/gpt2": Entry(("RetrofitLM",), retrofit_lm),
}


def run_registry():
    """Runs every entry; returns `{"<entry>::<array>": array}` (`"<entry>::error"` if it raised)."""
    arrays = {}
    for name, entry in REGISTRY.items():
        # Seeded by the name: an entry's weights and inputs do not depend on the others.
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        try:
            results = entry.run(rng)
        except Exception:
            results = {"error": np.array(traceback.format_exc())}
        arrays.update({f"{name}{SEPARATOR}{key}": value for key, value in results.items()})
    return arrays


if __name__ == "__main__":
    if keras.backend.backend() == "torch":
        import torch

        torch.set_num_threads(1)  # tiny tensors: more threads only contend (see conftest.py)
    np.savez(sys.argv[1], **run_registry())
