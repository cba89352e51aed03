import keras
import numpy as np
import pytest
from keras import ops

from keras_memory.layers import KNNAttention
from keras_memory.ops import (
    approx_top_k,
    bucketed_top_k,
    exact_top_k,
    gather_memory,
    retrieve_top_k,
    scann_top_k,
    two_stage_top_k,
)
from keras_memory.ops.attention import MASKED_LOGIT
from tests.conftest import to_numpy


def clustered(batch, memory, heads, dim, num_queries, seed=0):
    """Memory entries and queries around shared cluster centres, unit norm."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((32, dim))

    def sample(n):
        points = centres[rng.integers(0, 32, (batch, n, heads))]
        points = points + 0.3 * rng.standard_normal((batch, n, heads, dim))
        return (points / np.linalg.norm(points, axis=-1, keepdims=True)).astype("float32")

    return sample(num_queries), sample(memory)


def recall(found, expected):
    found, expected = np.asarray(found), np.asarray(expected)
    hits = [
        len(set(f) & set(e))
        for f, e in zip(
            found.reshape(-1, found.shape[-1]), expected.reshape(-1, expected.shape[-1])
        )
    ]
    return np.mean(hits) / expected.shape[-1]


@pytest.mark.parametrize("n", [256, 100, 96])  # blocked; not a multiple; too few blocks
def test_two_stage_top_k_is_exact(n):
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((2, 3, 5, n)).astype("float32")
    # Crowd the best scores into few blocks: the case a block-wise search gets wrong
    # when it keeps one entry per block.
    scores[..., :8] += 4.0
    values, indices = two_stage_top_k(scores, 16, block_size=4)
    expected = -np.sort(-scores, axis=-1)[..., :16]
    np.testing.assert_allclose(to_numpy(values), expected, rtol=1e-6)
    np.testing.assert_array_equal(
        np.take_along_axis(scores, to_numpy(indices), -1), to_numpy(values)
    )


def test_exact_top_k_skips_invalid_entries_in_blocks():
    q, mem = clustered(2, 1024, 2, 8, 4)
    valid = np.random.default_rng(2).random((2, 1024)) > 0.5
    scores, indices = exact_top_k(q, mem, valid, k=8, chunk_size=512)
    brute = np.where(valid[:, None, None], np.einsum("bqhd,bmhd->bhqm", q, mem), -1e6)
    np.testing.assert_allclose(to_numpy(scores), -np.sort(-brute, -1)[..., :8], atol=1e-5)
    rows = np.arange(2)[:, None, None, None]
    assert valid[rows, to_numpy(indices)].all()
    # Each (row, head) pair's indices point at its own scores: the search runs
    # pair by pair on JAX's CPU, and a mixed-up pair would fail here.
    np.testing.assert_allclose(
        np.take_along_axis(brute, to_numpy(indices), -1), to_numpy(scores), atol=1e-5
    )


def compiled(fn, *example):
    """`fn` as the backend compiles a step (torch runs eagerly).

    On TensorFlow the first argument (the queries) has a free batch axis and the others
    (the memory) a fixed one, as in a traced model whose state has a fixed batch size.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.jit(fn)
    if backend == "tensorflow":
        import tensorflow as tf

        first, *rest = example
        signature = [tf.TensorSpec((None, *first.shape[1:]), tf.as_dtype(first.dtype))]
        signature += [tf.TensorSpec(x.shape, tf.as_dtype(x.dtype)) for x in rest]
        return tf.function(fn, input_signature=signature)
    return fn


@pytest.mark.parametrize("run", ["eager", "compiled"])
@pytest.mark.parametrize("method", ["exact", "approx"])
def test_search_over_chunks_where_a_row_stores_nothing(method, run):
    # chunk_size 256 over 1,024 entries: row 0 stores only in chunk 0, row 1
    # five entries (fewer than k) in chunk 2, row 2 nothing: the chunks a
    # row stores nothing in are skipped, and must give what scoring them gives.
    q, mem = clustered(3, 1024, 2, 8, 4)
    valid = np.zeros((3, 1024), bool)
    valid[0, 100:300] = True
    valid[1, 700:705] = True

    def search(q, mem, valid):
        scores, indices = retrieve_top_k(method, q, mem, valid, k=8, chunk_size=256)
        gather_memory(mem, indices)  # as the layer does, with the static shapes it reads
        return scores, indices

    if run == "compiled":
        search = compiled(search, q, mem, valid)
    scores, indices = (to_numpy(t) for t in search(q, mem, valid))
    brute = np.where(valid[:, None, None], np.einsum("bqhd,bmhd->bhqm", q, mem), MASKED_LOGIT)
    np.testing.assert_allclose(scores, -np.sort(-brute, -1)[..., :8], atol=1e-5)
    found = scores > MASKED_LOGIT / 2
    assert found[0].all() and found[1][..., :5].all() and not found[1][..., 5:].any()
    assert not found[2].any()
    rows = np.broadcast_to(np.arange(3)[:, None, None, None], indices.shape)
    assert valid[rows[found], indices[found]].all()
    np.testing.assert_allclose(
        np.take_along_axis(brute, indices, -1)[found], scores[found], atol=1e-5
    )
    assert ((indices >= 0) & (indices < 1024)).all()  # the unread ones too: they are gathered


def equations(jaxpr):
    """Every equation of a JAX program, those of its sub-programs (map, branches) included."""
    for equation in jaxpr.eqns:
        yield equation
        for value in equation.params.values():
            for sub in value if isinstance(value, tuple) else (value,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    yield from equations(inner)


def test_a_chunk_no_row_stores_in_is_not_scored(monkeypatch):
    import keras_memory.ops.knn as knn

    # Rows store in chunks 0 and 2 of four: 1 and 3 hold nothing anywhere.
    q, mem = clustered(2, 1024, 2, 8, 4)
    valid = np.zeros((2, 1024), bool)
    valid[0, 10:20] = True
    valid[1, 600:700] = True

    def search(q, mem, valid):
        return exact_top_k(q, mem, valid, k=8, chunk_size=256)

    if keras.backend.backend() == "jax":
        import jax

        # A CPU program: one conditional per chunk, whose taken branch alone
        # holds the chunk's product; without free conditionals, none.
        conds = [
            e
            for e in equations(jax.make_jaxpr(search)(q, mem, valid).jaxpr)
            if e.primitive.name == "cond"
        ]
        assert len(conds) == 4
        for cond in conds:
            skipped, scored = (
                {e.primitive.name for e in equations(branch.jaxpr)}
                for branch in cond.params["branches"]
            )
            assert "dot_general" in scored and "dot_general" not in skipped
        monkeypatch.setattr(knn, "conditionals_are_free", lambda: False)
        # A new function: JAX would reuse the first trace of `search`.
        program = jax.make_jaxpr(lambda *a: search(*a))(q, mem, valid).jaxpr
        assert not [e for e in equations(program) if e.primitive.name == "cond"]
        return
    # TensorFlow and torch run the search eagerly here: only the taken branch runs.
    scored = []
    score_chunk = knn._chunk_scores

    def counted(queries, memory_keys, memory_valid, start, stop):
        scored.append(start)
        return score_chunk(queries, memory_keys, memory_valid, start, stop)

    monkeypatch.setattr(knn, "_chunk_scores", counted)
    search(q, mem, valid)
    assert scored == [0, 512]


def test_bucketed_is_the_best_entry_of_each_strided_bucket():
    q, mem = clustered(2, 64, 2, 8, 5)
    valid = np.random.default_rng(1).random((2, 64)) > 0.2
    scores, indices = bucketed_top_k(q, mem, valid, k=8, chunk_size=16)
    brute = np.einsum("bqhd,bmhd->bhqm", q, mem)
    brute = np.where(valid[:, None, None], brute, -1e6)
    buckets = brute.reshape(*brute.shape[:-1], 8, 8)  # (..., 64 // 8, 8): index = row*8 + j
    np.testing.assert_allclose(to_numpy(scores), buckets.max(-2), atol=1e-5)
    np.testing.assert_array_equal(to_numpy(indices), buckets.argmax(-2) * 8 + np.arange(8))


def test_approx_recall_against_exact():
    q, mem = clustered(1, 512, 2, 16, 32)
    valid = np.ones((1, 512), bool)
    _, exact = exact_top_k(q, mem, valid, 8)
    _, approx = approx_top_k(q, mem, valid, 8, chunk_size=128)
    assert recall(to_numpy(approx), to_numpy(exact)) >= 0.9


def test_scann_recall_against_exact_on_clustered_data():
    # 4,096 entries per (row, head): the tree index, not brute force.
    q, mem = clustered(1, 4096, 2, 16, 64)
    valid = np.ones((1, 4096), bool)
    _, exact = exact_top_k(q, mem, valid, 8)
    scores, found = scann_top_k(q, mem, valid, 8)
    assert recall(to_numpy(found), to_numpy(exact)) >= 0.9
    # Scores are recomputed exactly on device for whatever ScaNN found.
    brute = np.einsum("bqhd,bmhd->bhqm", q, mem)
    np.testing.assert_allclose(
        to_numpy(scores), np.take_along_axis(brute, to_numpy(found), -1), atol=1e-5
    )


def test_scann_skips_invalid_entries_and_marks_missing_neighbours():
    q, mem = clustered(2, 64, 1, 8, 3)
    valid = np.zeros((2, 64), bool)
    valid[0, :5] = True  # row 0: 5 entries for k = 8; row 1: none
    scores, found = scann_top_k(q, mem, valid, 8)
    scores, found = to_numpy(scores), to_numpy(found)
    assert set(found[0][scores[0] > -1e5].ravel()) <= set(range(5))
    assert (scores[0] > -1e5).sum(-1).max() == 5
    assert np.all(scores[1] <= -1e5)


@pytest.mark.parametrize("retrieval", ["bucketed", "approx", "scann"])
def test_every_retrieval_runs_in_the_layer(retrieval):
    layer = KNNAttention(2, 4, 4, memory_size=32, num_neighbors=4, retrieval=retrieval)
    x = np.random.default_rng(0).standard_normal((2, 8, 8)).astype("float32")
    _, state = layer(x, reset=np.array([True, True]))
    y, _ = layer(x, state=state, reset=np.array([False, False]))
    assert np.all(np.isfinite(to_numpy(y)))
    assert KNNAttention.from_config(layer.get_config()).retrieval == retrieval


@pytest.mark.parametrize("retrieval", ["exact", "bucketed", "approx", "scann"])
def test_bfloat16_queries_are_scored_in_the_memorys_float32(retrieval):
    # Scores 1 + i * 1e-4 are one number in bfloat16 (its step near 1 is
    # 2^-7): a search scored in the queries' bfloat16 could not rank them.
    memory = 64
    keys = np.zeros((1, memory, 1, 8), "float32")
    keys[0, :, 0, 0] = 1 + 1e-4 * np.arange(memory)
    queries = np.zeros((1, 2, 1, 8), "float32")
    queries[..., 0] = 1.0  # exact in bfloat16
    valid = np.ones((1, memory), bool)
    scores, indices = retrieve_top_k(
        retrieval, ops.cast(queries, "bfloat16"), keys, valid, 4, chunk_size=32
    )
    # The four highest; bucketed's four strided buckets each end in one of them.
    want = [60, 61, 62, 63]
    assert sorted(to_numpy(indices)[0, 0, 0].tolist()) == want
    assert str(to_numpy(scores).dtype) == "float32"
    np.testing.assert_allclose(
        np.sort(to_numpy(scores)[0, 0, 0]), 1 + 1e-4 * np.array(want), rtol=1e-6
    )


@pytest.mark.parametrize("retrieval", ["exact", "scann"])
def test_mixed_precision_layer_retrieves_from_its_float32_memory(retrieval):
    layer = KNNAttention(
        2, 4, 4, memory_size=32, num_neighbors=4, retrieval=retrieval, dtype="mixed_bfloat16"
    )
    x = np.random.default_rng(0).standard_normal((2, 8, 8)).astype("float32")
    _, state = layer(x, reset=np.array([True, True]))
    y, state = layer(x, state=state, reset=np.array([False, False]))
    assert str(to_numpy(state["memory_keys"]).dtype) == "float32"
    assert np.all(np.isfinite(to_numpy(ops.cast(y, "float32"))))


def test_bad_retrieval_arguments():
    with pytest.raises(ValueError, match="`retrieval` must be one of"):
        retrieve_top_k("faiss", None, None, None, 4)
    with pytest.raises(ValueError, match="`retrieval` must be one of"):
        KNNAttention(2, 4, 4, memory_size=32, retrieval="faiss")
    with pytest.raises(ValueError, match="multiple of `num_neighbors`"):
        KNNAttention(2, 4, 4, memory_size=30, num_neighbors=4, retrieval="bucketed")
