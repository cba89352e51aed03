"""Generation decodes every memory kind exactly as a forward pass reads the same text."""

import keras
import keras_hub
import numpy as np
import pytest

from keras_memory.generation import generate
from keras_memory.models import MemoryLM, RetrofitLM
from keras_memory.models.incremental_decoder import IncrementalDecoder
from tests.conftest import to_numpy

W, SEGMENT = 4, 8
SMALL = dict(hidden_dim=16, num_layers=2, num_heads=2, head_dim=8, intermediate_dim=32)
# Each kind, and the options that change what a state holds or when it is written.
CONFIGS = {
    "local": ("local", {}),
    "xl": ("xl", {}),
    "xl_compressed_rotary_registers": (
        "xl",
        {
            "compressed_memory_size": 4,
            "compression_rate": 2,
            "rotary": "reversed",
            "num_registers": 2,
        },
    ),
    # 16 entries: the ring wraps twice while the rows generate.
    "memorizing": ("memorizing", {"memory_size": 16, "num_neighbors": 4}),
    # The same memory in host RAM: a step searches it, a complete segment writes it.
    "memorizing_host": (
        "memorizing",
        {"memory_size": 16, "num_neighbors": 4, "memory_placement": "host"},
    ),
    # Smeared keys carry the previous token's key in the state: window re-reads.
    "memorizing_copy": (
        "memorizing",
        {
            "memory_size": 16,
            "num_neighbors": 4,
            "local_position_bias": True,
            "smear_keys": True,
        },
    ),
    "memorizing_dense": ("memorizing_dense", {"memory_size": 16}),
    "block_recurrent_feedback": ("block_recurrent", {"num_states": 3, "feedback": True}),
    "block_recurrent_lstm": ("block_recurrent", {"num_states": 3, "gate": "lstm"}),
    # One key/value head for both query heads: the step buffers and memories hold one.
    "grouped_xl_compressed_registers": (
        "xl",
        {
            "compressed_memory_size": 4,
            "compression_rate": 2,
            "num_registers": 2,
            "num_key_value_heads": 1,
        },
    ),
    "grouped_memorizing_host": (
        "memorizing",
        {
            "memory_size": 16,
            "num_neighbors": 4,
            "memory_placement": "host",
            "num_key_value_heads": 1,
        },
    ),
    # Two key heads for four query heads: a wrong pairing of heads would show.
    "grouped_block_recurrent_lstm": (
        "block_recurrent",
        {"num_states": 3, "gate": "lstm", "num_heads": 4, "head_dim": 4, "num_key_value_heads": 2},
    ),
    "grouped_memorizing_dense": (
        "memorizing_dense",
        {"memory_size": 16, "num_heads": 4, "head_dim": 4, "num_key_value_heads": 2},
    ),
    "melodi": (
        "melodi",
        {
            "summary_size": 2,
            "short_term_memory_size": 2,
            "long_term_memory_size": 8,
            "long_term_increment": 2,
        },
    ),
}
PROMPT_LENGTHS = (11, 3, 17)


def make_model(config, **overrides):
    kind, options = CONFIGS[config]
    return MemoryLM.from_preset(
        "tiny", kind=kind, window_length=W, **{**SMALL, **options, **overrides}
    )


def prompts(lengths=PROMPT_LENGTHS, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(3, 259, n).astype("int32") for n in lengths]


def teacher_forced_logits(model, rows):
    """Logits of a forward pass over each row (zero-padded), segment by segment."""
    length = -(-max(map(len, rows)) // SEGMENT) * SEGMENT
    tokens = np.zeros((len(rows), length), np.int32)
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = row
    state, logits = None, []
    for start in range(0, length, SEGMENT):
        reset = np.full(len(rows), start == 0)
        inputs = {"tokens": tokens[:, start : start + SEGMENT], "reset": reset}
        out, state = model(inputs, state=state)
        logits.append(to_numpy(out))
    return np.concatenate(logits, axis=1)


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_each_token_gets_the_forward_pass_logits_in_a_batch_of_unequal_prompts(config):
    model = make_model(config)
    batch = prompts()
    # 21 new tokens: every row crosses several window and segment boundaries.
    results, logits = model.generate(
        batch, max_new_tokens=21, sampler="greedy", segment_length=SEGMENT, return_logits=True
    )
    expected = teacher_forced_logits(model, results)
    for row, (prompt, result) in enumerate(zip(batch, results)):
        np.testing.assert_array_equal(result[: len(prompt)], prompt)
        assert len(result) == len(prompt) + 21
        want = expected[row, len(prompt) - 1 : len(result) - 1]
        np.testing.assert_allclose(logits[row], want, rtol=1e-4, atol=1e-4)
        # Greedy: each token is the argmax of its logits, padding never drawn.
        want[:, model.pad_token_id] = -np.inf
        np.testing.assert_array_equal(result[len(prompt) :], want.argmax(axis=1))


def counted(decoder):
    """Records the token-array length of each forward call and of each step."""
    calls, steps = [], []
    forward, step = decoder.call, getattr(decoder, "step", None)

    def counting_call(tokens, *args):
        calls.append(tokens.shape[1])
        return forward(tokens, *args)

    def counting_step(tokens, *args):
        steps.append(tokens.shape[1])
        return step(tokens, *args)

    decoder.call, decoder.step = counting_call, counting_step
    return calls, steps


def test_a_token_is_one_step_and_a_complete_segment_is_read_once_for_its_memory():
    model = make_model("memorizing")
    decoder = IncrementalDecoder(model, SEGMENT, batch_size=1)
    assert decoder.mode == "token"
    calls, steps = counted(decoder)
    text = prompts((40,))[0][None]
    for length in range(1, 41):
        decoder.logits_before(text, length)
    assert steps == [1] * 40
    # The kNN memory is written after each complete segment, as in training.
    assert calls == [SEGMENT] * (40 // SEGMENT - 1)


def test_kinds_without_a_token_step_re_read_a_window_or_the_segment():
    modes = {
        config: IncrementalDecoder(make_model(config), SEGMENT, batch_size=1).mode
        for config in CONFIGS
    }
    assert modes == {
        "local": "token",
        "xl": "token",
        "memorizing": "token",
        # A step searches the host memory without writing it.
        "memorizing_host": "token",
        # A token's smeared key needs the previous token's unsmeared one.
        "memorizing_copy": "window",
        # Rotary queries read position-free registers by their place in the segment.
        "xl_compressed_rotary_registers": "window",
        # Dense-KV steps over the whole segment so far (its buffers are the segment's).
        "memorizing_dense": "token",
        # Feedback runs the stack window by window.
        "block_recurrent_feedback": "window",
        "block_recurrent_lstm": "token",
        "grouped_xl_compressed_registers": "token",
        "grouped_memorizing_host": "token",
        "grouped_block_recurrent_lstm": "token",
        "grouped_memorizing_dense": "token",
        "melodi": "window",
    }
    # Neither can be re-read window by window: dense-KV attends across the segment.
    for config in ("memorizing_dense", "xl_compressed_rotary_registers"):
        assert make_model(config).decoding_window_length() is None
    decoder = IncrementalDecoder(make_model("melodi"), SEGMENT, batch_size=1)
    calls, _ = counted(decoder)
    text = prompts((20,))[0][None]
    for length in range(1, 21):
        decoder.logits_before(text, length)
    assert calls == [W] * 20  # each token re-reads its window; nothing waits for a segment


def test_a_long_prompt_is_read_segment_by_segment_then_token_by_token():
    model = make_model("xl")
    decoder = IncrementalDecoder(model, SEGMENT, batch_size=1)
    calls, steps = counted(decoder)
    text = prompts((35,))[0][None]
    decoder.prefill(text, 35)
    decoder.logits_before(text, 35)
    assert calls == [SEGMENT] * 4  # 34 tokens before the last: 4 segments, then 3 steps
    assert steps == [1] * 3


def test_retrofit_lm_generates_exactly():
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=259,
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        dropout=0.0,
        max_sequence_length=32,
    )
    model = RetrofitLM(backbone, memory_size=4 * SEGMENT, num_neighbors=4, window_length=W)
    batch = prompts((5, 9))
    results, logits = model.generate(
        batch, max_new_tokens=12, sampler="greedy", segment_length=SEGMENT, return_logits=True
    )
    expected = teacher_forced_logits(model, results)
    for row, (prompt, result) in enumerate(zip(batch, results)):
        want = expected[row, len(prompt) - 1 : len(result) - 1]
        np.testing.assert_allclose(logits[row], want, rtol=1e-4, atol=1e-4)


def test_a_stateful_model_generates_with_its_weights_and_keeps_its_memory():
    model = make_model("memorizing", stateful=True)
    model.compile(sampler="greedy")
    model.build({"tokens": (1, SEGMENT), "reset": (1,)})
    model({"tokens": prompts((SEGMENT,))[0][None], "reset": np.array([True])})
    before = [to_numpy(v).copy() for v in model.non_trainable_variables]
    prompt = prompts((6,))[0]
    first = model.generate(prompt, max_new_tokens=10, segment_length=SEGMENT)
    after = [to_numpy(v) for v in model.non_trainable_variables]
    for old, new in zip(before, after):
        np.testing.assert_array_equal(old, new)
    # Weights changed after the first call reach the second (the twin is refreshed).
    embedding = model.token_embedding.embeddings
    embedding.assign(to_numpy(embedding)[::-1].copy())
    second = model.generate(prompt, max_new_tokens=10, segment_length=SEGMENT)
    twin = model.generation_model()[0]
    np.testing.assert_array_equal(to_numpy(twin.token_embedding.embeddings), to_numpy(embedding))
    assert not np.array_equal(first, second)


def test_text_prompts_come_back_as_text_and_stop_at_a_stop_token():
    model = make_model("xl")
    texts = model.generate(["ab", "hello"], max_new_tokens=6, sampler="greedy")
    assert texts[0].startswith("ab") and texts[1].startswith("hello")
    # A stop token ends a row (kept, as keras-hub does); the other rows go on.
    batch = prompts((5, 5), seed=3)
    free = model.generate(batch, max_new_tokens=8, sampler="greedy")
    stop = int(free[0][6])
    stopped = model.generate(batch, max_new_tokens=8, sampler="greedy", stop_token_ids=[stop])
    first_stop = 5 + list(free[0][5:]).index(stop)
    np.testing.assert_array_equal(stopped[0], free[0][: first_stop + 1])
    if stop not in free[1][5:]:
        np.testing.assert_array_equal(stopped[1], free[1])


def test_stream_sees_each_new_token_as_it_is_drawn():
    model = make_model("xl")
    seen = []
    batch = prompts((3, 6))
    results = model.generate(
        batch, max_new_tokens=5, sampler="greedy", stream=lambda ids: seen.append(ids.copy())
    )
    seen = np.array(seen)
    for row, (prompt, result) in enumerate(zip(batch, results)):
        drawn = seen[:, row][seen[:, row] >= 0]
        np.testing.assert_array_equal(drawn, result[len(prompt) :])
    # The longer prompt is still being read while the shorter one draws.
    assert (seen[:3, 1] == -1).all() and (seen[:3, 0] >= 0).all()


def test_keras_hub_samplers_by_name_instance_and_compile():
    model = make_model("xl")
    prompt = prompts((5,))[0]
    greedy = model.generate(prompt, max_new_tokens=8, sampler="greedy")
    top_one = model.generate(prompt, max_new_tokens=8, sampler=keras_hub.samplers.TopKSampler(k=1))
    np.testing.assert_array_equal(greedy, top_one)
    model.compile(sampler="greedy")
    np.testing.assert_array_equal(model.generate(prompt, max_new_tokens=8), greedy)
    np.testing.assert_array_equal(generate(model, prompt, max_new_tokens=8), greedy)
    draws = [
        model.generate(
            prompt, max_new_tokens=8, sampler=keras_hub.samplers.RandomSampler(seed=seed)
        )
        for seed in (7, 7)
    ]
    np.testing.assert_array_equal(*draws)


def test_padding_is_never_drawn():
    # OPT's vocabulary pads with 1; make padding by far the likeliest token.
    model = make_model("xl", pad_token_id=7)
    model.build({"tokens": (None, None), "reset": (None,)})
    embeddings = to_numpy(model.token_embedding.embeddings).copy()
    embeddings[7] = 100.0 * embeddings.mean(axis=0) + 100.0
    model.token_embedding.embeddings.assign(embeddings)
    for sampler in ("greedy", "random"):
        result = model.generate(prompts((5,))[0], max_new_tokens=20, sampler=sampler)
        assert 7 not in result[5:]


@pytest.mark.parametrize(
    "arguments, name",
    [
        (dict(prompts=[]), "prompts"),
        (dict(prompts=[np.zeros(0, "int32")]), "prompts"),
        (dict(prompts=""), "prompts"),
        (dict(prompts=[1, 300]), "prompts"),
        (dict(prompts=[[1, 2], ["a"]]), "prompts"),
        (dict(max_length=3), "max_length"),
        (dict(max_new_tokens=0), "max_new_tokens"),
        (dict(max_new_tokens=2, max_length=9), "max_length"),
        (dict(max_new_tokens=None), "max_length"),
        (dict(sampler="nucleus"), "sampler"),
        (dict(sampler=keras_hub.samplers.BeamSampler(num_beams=2)), "sampler"),
        (dict(sampler=keras_hub.samplers.TopKSampler(temperature=0.0)), "sampler"),
        (dict(stop_token_ids=[400]), "stop_token_ids"),
        (dict(segment_length=None), "segment_length"),
        (dict(stream="print"), "stream"),
    ],
)
def test_bad_arguments_are_refused_by_name_and_leave_the_memory_alone(arguments, name):
    model = make_model("memorizing", stateful=True)
    model.build({"tokens": (1, SEGMENT), "reset": (1,)})
    model({"tokens": prompts((SEGMENT,))[0][None], "reset": np.array([True])})
    before = [to_numpy(v).copy() for v in model.non_trainable_variables]
    call = {"prompts": [1, 5, 9], "max_new_tokens": 2, "segment_length": SEGMENT, **arguments}
    with pytest.raises(ValueError, match=name):
        model.generate(call.pop("prompts"), **call)
    for old, new in zip(before, model.non_trainable_variables):
        np.testing.assert_array_equal(old, to_numpy(new))


def test_texts_need_the_tokenizer_of_a_non_byte_vocabulary():
    model = make_model("xl", vocab_size=300)
    with pytest.raises(ValueError, match="tokenizer"):
        model.generate("hello", max_new_tokens=2)


def test_an_unbuilt_stateful_model_is_refused():
    model = make_model("xl", stateful=True)
    with pytest.raises(ValueError, match="not built"):
        model.generate([1, 2], max_new_tokens=2)


# Block-Recurrent: the state's attentions run in the compute dtype, in the
# window's pass and in decoding's window step alike (feedback: read by the other layer).
@pytest.mark.parametrize("config", ["xl", "block_recurrent_feedback", "block_recurrent_lstm"])
def test_mixed_precision_generation_follows_the_forward_pass(config):
    model = make_model(config, dtype="mixed_bfloat16")
    batch = prompts((6,))
    results, logits = model.generate(batch, max_new_tokens=6, sampler="greedy", return_logits=True)
    expected = teacher_forced_logits(model, results)[0, 5:11]
    # bfloat16 activations: a window re-read rounds like the segment's pass, not bit for bit.
    assert np.abs(logits[0] - expected).max() < 0.1 * np.abs(expected).max()
    assert keras.config.dtype_policy().name == "float32"
