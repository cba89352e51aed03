"""Train a memory LM with `model.fit` on long documents: any kind, from Transformer-XL to Melodi.

Each batch row reads one document's segments in order; the model is stateful,
so its memory (XL cache, kNN memory) is carried from step to step inside `fit`
and reset in-graph at every document start. Copy this file and change the
corpus, preset or kind.

    python recipes/fit.py --kind xl --steps 300
    python recipes/fit.py --kind memorizing --memory-size 8192 --retrieval exact
    python recipes/fit.py --kind block_recurrent --gate fixed --variant skip
    python recipes/fit.py --kind melodi
    KERAS_BACKEND=torch python recipes/fit.py --kind local --data ~/books
"""

import argparse

import keras

from keras_memory.data import SegmentStream, StepWindow, python_source_corpus, text_files_corpus
from keras_memory.memories import get_kind
from keras_memory.models import MODEL_KINDS, PRESETS, MemoryLM
from keras_memory.training import CheckpointEvery, evaluate_bits_per_token


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="xl", choices=MODEL_KINDS)
    parser.add_argument("--memory-size", type=int, default=8192, help="memorizing kinds")
    parser.add_argument(
        "--retrieval", default="exact", help="memorizing: exact|bucketed|approx|scann"
    )
    parser.add_argument("--gate", default="fixed", help="block_recurrent: fixed|lstm")
    parser.add_argument("--variant", default="skip", help="block_recurrent: skip|dual|single")
    parser.add_argument(
        "--feedback", action="store_true", help="block_recurrent: every layer reads the state"
    )
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--data", default=None, help="Text folder; default: Python sources.")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workdir", default="workdir/recipe_fit")
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    segment_length = PRESETS[args.preset]["segment_length"]
    if args.data:
        train_docs = text_files_corpus(args.data)
        validation_docs = train_docs
    else:
        train_docs = python_source_corpus("train", max_documents=400)
        validation_docs = python_source_corpus("validation", max_documents=20)
    stream = SegmentStream(train_docs.tokenize(), args.batch_size, segment_length, seed=0)

    # The flags this kind reads: the registry knows which are its own.
    memory = get_kind(args.kind).own_options(
        memory_size=args.memory_size,
        retrieval=args.retrieval,
        gate=args.gate,
        variant=args.variant,
        feedback=args.feedback,
    )
    model = MemoryLM.from_preset(args.preset, kind=args.kind, stateful=True, **memory)
    model.compile(optimizer=keras.optimizers.AdamW(3e-3))  # padding-masked loss by default
    model.fit(
        StepWindow(stream, first_step=0, num_steps=args.steps),
        epochs=1,
        callbacks=[CheckpointEvery(args.workdir, every=100)],
    )

    validation = SegmentStream(validation_docs.tokenize(), args.batch_size, segment_length)
    print(evaluate_bits_per_token(model, validation, max_steps=20))


if __name__ == "__main__":
    main()
