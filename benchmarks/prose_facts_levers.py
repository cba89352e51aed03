"""One point of the prose-facts lever sweep: train a `tiny` model, score its answers by distance.

Finer-grained than `keras-memory bench recall --task prose-facts`: the training
documents are a mix given as `FACTSxDISTANCExCOUNT` items (e.g.
`1x48x16000,4x1024x500`: 16,000 one-fact documents with the fact 48 bytes before
its question, where attention can learn the copy, and 500 four-fact documents at
1,024), a second training phase can follow (a curriculum), and any
`MemoryLM.from_preset` option is a flag. Prints and appends one JSON line.

    KERAS_BACKEND=jax python benchmarks/prose_facts_levers.py --name xl_in_window \\
        --options '{"kind": "xl"}' --train 1x48x40000 --eval 1x48,1x100 --steps 4000
"""

import argparse
import json
import time

import keras
import numpy as np

from keras_memory.data import ByteTokenizer, SegmentStream
from keras_memory.data.prose_facts import passage_texts, prose_fact_documents
from keras_memory.models import PRESETS, MemoryLM, warm_start_model
from keras_memory.training.recall import evaluate_recall


def documents(passages, spec, seed, default_count=2000):
    """Documents of `FACTSxDISTANCE[xCOUNT]` items (or bare distances: four facts)."""
    found = []
    for i, item in enumerate(spec.split(",")):
        parts = [int(p) for p in item.split("x")]
        facts, distance, count = (
            (4, parts[0], default_count) if len(parts) == 1 else (parts + [default_count])[:3]
        )
        found += prose_fact_documents(passages, count, distance, seed=seed + i, num_facts=facts)
    return found


def stream_of(docs, segment, seed):
    tokenizer = ByteTokenizer()
    return SegmentStream([tokenizer.encode(d.text) for d in docs], 8, segment, seed=seed)


def train_phase(model, texts, spec, steps, segment, seed, stream_seed, start_from=None):
    """Trains `model` `steps` steps on documents `spec` (first starting it from
    `start_from`'s weights, if given); returns the losses."""
    stream = stream_of(documents(texts, spec, seed), segment, stream_seed)
    model.build_from_data(stream)
    if start_from is not None:
        print("new weights:", warm_start_model(model, start_from), flush=True)
    model.reset_state()
    return [float(model.train_on_batch(*stream[step])) for step in range(steps)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--options", default='{"kind": "xl"}', help="from_preset options (JSON)")
    parser.add_argument("--passages", default="kjv", help="kjv, python-docs, ... or a path")
    parser.add_argument("--train", default="256,1024,1536,2048")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--train2", default="", help="a second phase's documents")
    parser.add_argument("--steps2", type=int, default=0)
    parser.add_argument(
        "--pretrain", default="", help="documents of a first phase trained by an xl model"
    )
    parser.add_argument(
        "--pretrain-steps",
        type=int,
        default=0,
        help="steps of that xl model; the model then starts from its weights (warm_start_model)",
    )
    parser.add_argument("--eval", default="200,500,1000,1500,2000")
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="benchmarks/results/prose_facts_levers_cpu.jsonl")
    args = parser.parse_args()
    options = json.loads(args.options)
    segment = options.get("segment_length", PRESETS["tiny"]["segment_length"])
    train_text = passage_texts(args.passages, "train")
    keras.utils.set_random_seed(args.seed)
    losses, started = [], time.time()
    sizes = {k: v for k, v in options.items() if k in ("window_length", "segment_length")}
    pretrained = None
    if args.pretrain_steps:
        pretrained = MemoryLM.from_preset("tiny", stateful=True, kind="xl", **sizes)
        pretrained.compile(optimizer=keras.optimizers.AdamW(args.learning_rate))
        losses += train_phase(
            pretrained,
            train_text,
            args.pretrain,
            args.pretrain_steps,
            segment,
            100 * args.seed + 25,
            9,
        )
    model = MemoryLM.from_preset("tiny", stateful=True, **options)
    model.compile(optimizer=keras.optimizers.AdamW(args.learning_rate))
    phases = [(args.train, args.steps), (args.train2, args.steps2)]
    for phase, (spec, steps) in enumerate(phases):
        if steps:
            losses += train_phase(
                model,
                train_text,
                spec,
                steps,
                segment,
                100 * args.seed + 50 * phase,
                phase,
                pretrained,
            )
            pretrained = None
    train_seconds = time.time() - started
    scored = documents(passage_texts(args.passages, "validation"), args.eval, 10_000, 16)
    result = evaluate_recall(model, scored, segment, batch_size=8)
    record = {
        "name": args.name,
        "options": options,
        "passages": args.passages,
        "train": args.train,
        "steps": args.steps,
        "train2": args.train2,
        "steps2": args.steps2,
        **(
            {"pretrain": args.pretrain, "pretrain_steps": args.pretrain_steps}
            if args.pretrain_steps
            else {}
        ),
        "seed": args.seed,
        "train_seconds": round(train_seconds),
        "final_train_loss": round(float(np.mean(losses[-100:])), 4),
        "answer_bits": round(result["bits"], 3),
        "by_distance": {
            str(d): {"bits": round(r["bits"], 2), "accuracy": round(r["accuracy"], 2)}
            for d, r in sorted(result["by_distance"].items())
        },
        "backend": keras.backend.backend(),
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(record), flush=True)
    if args.output:
        with open(args.output, "a") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
