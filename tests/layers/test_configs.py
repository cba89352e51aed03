"""Every public layer's config is its constructor's arguments, and round-trips."""

import inspect

import keras
import numpy as np
import pytest

from keras_memory import layers
from keras_memory.layers.attention_heads import AttentionHeads
from tests.conftest import to_numpy

B, S, HIDDEN, HEADS, HEAD_DIM, W = 2, 8, 8, 2, 4, 4
# What `Layer.get_config` adds to every config.
BASE_KEYS = {"name", "trainable", "dtype"}
# Layers whose `**kwargs` are a Keras layer's arguments: their config is that layer's.
KERAS_PARENTS = {"AccumulatingDense": keras.layers.Dense}


def build(layer, *shapes):
    layer.build(*shapes)
    return layer


# A built instance of every public layer, with options off their defaults
# where the layer has them, so a config that forgot one would not round-trip.
BUILT = {
    "AccumulatingDense": lambda: build(
        layers.AccumulatingDense(4, use_bias=False, activation="gelu"), (B, S, HIDDEN)
    ),
    "BlockRecurrentAttention": lambda: build(
        layers.BlockRecurrentAttention(
            HEADS,
            HEAD_DIM,
            W,
            num_states=2,
            gate="lstm",
            variant="dual",
            state_intermediate_dim=12,
            seed=3,
            rotary="reversed",
            num_registers=1,
            compressed_memory_size=4,
            compression_rate=2,
        ),
        (B, S, HIDDEN),
    ),
    "DenseKVAttention": lambda: build(
        layers.DenseKVAttention(HEADS, HEAD_DIM, memory_size=16, include_self=True),
        (B, S, HIDDEN),
    ),
    "FeedForward": lambda: build(layers.FeedForward(16, activation="swiglu"), (B, S, HIDDEN)),
    "KNNAttention": lambda: build(
        layers.KNNAttention(
            HEADS,
            HEAD_DIM,
            W,
            memory_size=16,
            num_neighbors=2,
            retrieval="bucketed",
            rotary="standard",
            rotary_base=500.0,
            num_registers=2,
        ),
        (B, S, HIDDEN),
    ),
    "MelodiLayer": lambda: build(
        layers.MelodiLayer(
            HEADS,
            HEAD_DIM,
            W,
            16,
            summary_size=2,
            short_term_memory_size=2,
            long_term_memory_size=4,
            long_term_increment=2,
        ),
        (B, 2 * (W + 2), HIDDEN),
    ),
    "MemoryLayer": lambda: layers.MemoryLayer(stateful=True),
    "RelativePositionBias": lambda: build(
        layers.RelativePositionBias(HEADS, num_buckets=8, max_distance=16, bidirectional=True)
    ),
    "TokenMixing": lambda: build(
        layers.TokenMixing(3, use_norm_and_residual=False), (B, W, HIDDEN), (B, 2, HIDDEN)
    ),
    "TransformerBlock": lambda: build(
        layers.TransformerBlock(layers.XLAttention(HEADS, HEAD_DIM, W), 16, dropout=0.1),
        (B, S, HIDDEN),
    ),
    "XLAttention": lambda: build(
        layers.XLAttention(
            HEADS,
            HEAD_DIM,
            W,
            include_self=True,
            num_position_buckets=16,
            compressed_memory_size=4,
            compression_rate=2,
            rotary="reversed",
            rotary_trained_window=2,
            num_registers=1,
            read_recurrent_state=True,
        ),
        (B, S, HIDDEN),
    ),
}


def constructor_arguments(cls):
    return {
        name
        for name, parameter in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and parameter.kind is not inspect.Parameter.VAR_KEYWORD
    }


def test_every_public_layer_is_covered():
    assert set(BUILT) == set(layers.__all__)


@pytest.mark.parametrize("name", sorted(BUILT))
def test_config_holds_exactly_the_constructor_arguments(name):
    layer = BUILT[name]()
    keys = set(layer.get_config()) - BASE_KEYS
    if name in KERAS_PARENTS:
        parent = KERAS_PARENTS[name](**{k: layer.get_config()[k] for k in keys})
        assert keys == set(parent.get_config()) - BASE_KEYS
        assert constructor_arguments(type(layer)) <= keys
    else:
        assert keys == constructor_arguments(type(layer))


@pytest.mark.parametrize("name", sorted(BUILT))
def test_config_round_trips(name):
    layer = BUILT[name]()
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    if name == "MemoryLayer":
        return  # the abstract base: no saved model holds one
    # Through Keras's own serialisation, as a saved model's config goes.
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(again) is type(layer)
    assert again.get_config() == config


def test_a_round_tripped_attention_layer_computes_the_same():
    layer = BUILT["KNNAttention"]()
    clone = layers.KNNAttention.from_config(layer.get_config())
    clone.build((B, S, HIDDEN))
    clone.set_weights(layer.get_weights())
    x = np.random.default_rng(0).standard_normal((B, S, HIDDEN)).astype("float32")
    np.testing.assert_allclose(to_numpy(clone(x)[0]), to_numpy(layer(x)[0]), atol=1e-6)


def test_the_attention_base_config_is_its_arguments():
    heads = AttentionHeads(HEADS, HEAD_DIM, normalize_keys=False, stateful=True)
    keys = set(heads.get_config()) - BASE_KEYS
    assert keys == constructor_arguments(AttentionHeads)
    assert keys == {
        "num_heads",
        "head_dim",
        "num_key_value_heads",
        "normalize_keys",
        "kernel_initializer",
        "stateful",
    }
