"""Recall accuracy by fact-to-question distance on synthetic documents."""

import numpy as np

from keras_memory.data import synthetic
from keras_memory.data.streaming import SegmentStream
from keras_memory.data.tokenizers.byte_tokenizer import ByteTokenizer
from keras_memory.training.evaluation import stream_logits, token_nats


def recall_stream(documents, segment_length, batch_size=1):
    """The in-order `SegmentStream` that `evaluate_recall` reads.

    Args:
        documents: list of `SyntheticDocument`s.
        segment_length: int. Tokens per segment.
        batch_size: int. Rows per batch.

    Returns:
        A `SegmentStream` of the documents' `ByteTokenizer` ids, `seed=None`
        (document `d` of the stream is `documents[d]`).
    """
    tokenizer = ByteTokenizer()
    tokens = [tokenizer.encode(doc.text) for doc in documents]
    return SegmentStream(
        tokens, batch_size, segment_length, seed=None, vocab_size=tokenizer.vocab_size
    )


def answer_positions(stream, documents):
    """Where the stream predicts each answer token.

    Document `d`'s token `i` is target `i` of its flattened segments (the
    model reads `[BOS] + doc` and predicts `doc + [EOS]`), so it is predicted
    at segment `i // segment_length`, column `i % segment_length`, in the
    stream row that reads `d`, at that row's first step for `d` plus the
    segment.

    Args:
        stream: the `SegmentStream` of `documents` (e.g. `recall_stream`),
            document `d` of the stream being `documents[d]`.
        documents: list of `SyntheticDocument`s.

    Returns:
        A dict of parallel arrays over every answer token: `positions`
        `(n, 3)` int64 `(step, row, column)`, `tokens` `(n,)` int32 (the
        expected ids), `distances` `(n,)` int64, `spans` `(n,)` int64 (a
        running index of the answer span the token belongs to).
    """
    if len(documents) != len(stream.documents):
        raise ValueError(
            f"`documents` has {len(documents)} entries but the stream holds "
            f"{len(stream.documents)} documents."
        )
    length = stream.segment_length
    first_step = {}
    for row, doc_ids in enumerate(stream.row_documents):
        step = 0
        for doc_id in doc_ids:
            first_step[int(doc_id)] = (step, row)
            step += -(-(len(stream.documents[doc_id]) + 1) // length)
    positions, tokens, distances, spans = [], [], [], []
    span_index = 0
    for doc_id, doc in enumerate(documents):
        ids = stream.documents[doc_id]
        start_step, row = first_step[doc_id]
        for start, end in doc.answer_spans:
            if not 0 <= start < end <= len(ids):
                raise ValueError(
                    f"Document {doc_id}'s answer span ({start}, {end}) is outside its "
                    f"{len(ids)} tokens."
                )
            for i in range(start, end):
                positions.append((start_step + i // length, row, i % length))
                tokens.append(ids[i])
                distances.append(doc.distance)
                spans.append(span_index)
            span_index += 1
    return {
        "positions": np.asarray(positions, dtype=np.int64).reshape(-1, 3),
        "tokens": np.asarray(tokens, dtype=np.int32),
        "distances": np.asarray(distances, dtype=np.int64),
        "spans": np.asarray(spans, dtype=np.int64),
    }


def evaluate_recall(model, documents, segment_length, batch_size=1):
    """Greedy accuracy on the answer tokens of synthetic documents, by distance.

    Streams the documents through the model in order from a fresh memory,
    exactly as in training (`recall_stream`), and scores the argmax
    prediction at every answer token. It stops after the last step holding
    an answer, which cannot change any score.

    Args:
        model: a `MemoryLM`, stateful (its memory is reset first and after;
            it must be built for `batch_size` rows, or unbuilt) or
            functional.
        documents: list of `SyntheticDocument`s (e.g. from
            `keras_memory.data.synthetic.passkey_documents`).
        segment_length: int. Tokens per segment.
        batch_size: int. Rows per batch.

    Returns:
        A dict: `by_distance` maps each distance to `{"accuracy": float,
        "answers": int, "exact_match": float, "bits": float}` (`answers`
        counts answer tokens; `exact_match` is the fraction of answer spans
        with every token right; `bits` is the mean cross-entropy of an
        answer token in bits), plus the overall `accuracy`, `answers`,
        `exact_match` and `bits`.

    Example:
    ```python
    docs = passkey_documents(8, distance=500)
    result = evaluate_recall(model, docs, segment_length=256)
    result["by_distance"][500]["accuracy"]
    ```
    """
    stream = recall_stream(documents, segment_length, batch_size)
    answers = answer_positions(stream, documents)
    positions = answers["positions"]
    correct = np.zeros(len(positions), dtype=bool)
    bits = np.zeros(len(positions))
    steps = int(positions[:, 0].max()) + 1 if len(positions) else 0
    by_step = [np.flatnonzero(positions[:, 0] == step) for step in range(steps)]
    for step, _, targets, logits in stream_logits(model, stream, steps):
        picked = by_step[step]
        if not len(picked):
            continue
        _, rows, columns = positions[picked].T
        if not np.array_equal(targets[rows, columns], answers["tokens"][picked]):
            raise RuntimeError("Answer positions do not match the stream's targets.")
        picked_logits = logits[rows, columns]
        correct[picked] = picked_logits.argmax(-1) == answers["tokens"][picked]
        bits[picked] = token_nats(picked_logits, answers["tokens"][picked]) / np.log(2)

    def summary(mask):
        spans = answers["spans"][mask]
        span_ok = [correct[mask][spans == s].all() for s in np.unique(spans)]
        return {
            "accuracy": float(correct[mask].mean()) if mask.any() else 0.0,
            "answers": int(mask.sum()),
            "exact_match": float(np.mean(span_ok)) if span_ok else 0.0,
            "bits": float(bits[mask].mean()) if mask.any() else 0.0,
        }

    distances = answers["distances"]
    by_distance = {int(d): summary(distances == d) for d in np.unique(distances)}
    return {"by_distance": by_distance, **summary(np.ones(len(correct), dtype=bool))}


def recall_by_distance(
    model, task, distances, num_documents, segment_length, seed=0, batch_size=1, **task_kwargs
):
    """Recall accuracy at each distance, for one synthetic task.

    Builds `num_documents` documents per distance with
    `task(num_documents=..., distance=d, seed=seed + i, **task_kwargs)` (the
    `i`-th distance gets seed `seed + i`, so facts differ across distances)
    and scores them all in one `evaluate_recall` stream.

    Args:
        model: a `MemoryLM` (see `evaluate_recall`).
        task: a document function such as `passkey_documents` or
            `associative_recall_documents`, or its name: `"passkey"` or
            `"associative_recall"`.
        distances: iterable of distinct ints.
        num_documents: int. Documents per distance.
        segment_length: int. Tokens per segment.
        seed: int. Base seed.
        batch_size: int. Rows per batch.
        **task_kwargs: further arguments of `task` (e.g. `num_pairs=8`).

    Returns:
        A dict `{distance: accuracy}` (greedy per-token accuracy).

    Example:
    ```python
    recall_by_distance(model, "passkey", [128, 512, 2048], 8, segment_length=512)
    ```
    """
    tasks = {
        "passkey": synthetic.passkey_documents,
        "associative_recall": synthetic.associative_recall_documents,
    }
    if isinstance(task, str):
        if task not in tasks:
            raise ValueError(f"Unknown `task` {task!r}; choose one of {sorted(tasks)}.")
        task = tasks[task]
    distances = [int(d) for d in distances]
    if not distances or len(set(distances)) != len(distances):
        raise ValueError(f"`distances` must be distinct and non-empty; got {distances}.")
    documents = []
    for i, distance in enumerate(distances):
        documents += task(
            num_documents=num_documents, distance=distance, seed=seed + i, **task_kwargs
        )
    result = evaluate_recall(model, documents, segment_length, batch_size=batch_size)
    return {d: result["by_distance"][d]["accuracy"] for d in distances}
