"""Give a pretrained keras-hub decoder kNN memory and fine-tune it on long documents.

`RetrofitLM` inserts a kNN memory block (`KNNAttention`, zero output
projection) after one decoder layer of a keras-hub GPT-2 or OPT backbone, so
the untrained model computes exactly what the backbone computes. The model is
stateful: each batch row reads one document's segments in order inside
`model.fit`, and the memory block carries the document from segment to
segment. The recipe prints validation bits per token of the plain backbone
and of the retrofitted model before and after fine-tuning (the first two are
equal: the memory block starts as a no-op).

Without `--preset` it runs offline on a small randomly initialised GPT-2 with
keras_memory's byte vocabulary and the embedded Python-source corpus (a smoke
test of the pipeline: there is nothing pretrained to keep). With `--preset`
it loads the backbone and the tokenizer of a keras-hub preset (a name, an
`hf://` / `kaggle://` handle, or a local directory holding
`backbone.save_to_preset` and `tokenizer.save_to_preset`).

    python recipes/retrofit.py --steps 300
    python recipes/retrofit.py --preset gpt2_base_en --freeze-backbone --batch-size 4
    KERAS_BACKEND=torch python recipes/retrofit.py --preset opt_125m_en --data ~/books
"""

import argparse
import json
import math

import keras
import numpy as np

from keras_memory.data import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    ByteTokenizer,
    SegmentStream,
    StepWindow,
    python_source_corpus,
    special_token_ids,
    text_files_corpus,
)
from keras_memory.models import RetrofitLM
from keras_memory.training import CheckpointEvery
from keras_memory.training.evaluation import target_nats


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--preset", default=None, help="keras-hub preset; default: a small random GPT-2"
    )
    parser.add_argument("--data", default=None, help="Text folder; default: Python sources.")
    parser.add_argument("--max-documents", type=int, default=400, help="training documents")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--segment-length", type=int, default=512)
    parser.add_argument("--memory-size", type=int, default=8192)
    parser.add_argument("--num-neighbors", type=int, default=32)
    parser.add_argument("--window-length", type=int, default=128)
    parser.add_argument("--memory-layer", type=int, default=None, help="default: 2/3 up")
    parser.add_argument("--freeze-backbone", action="store_true", help="train the memory only")
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        help="default: 3e-3 random model, 1e-3 frozen preset, 1e-4 preset",
    )
    parser.add_argument("--eval-steps", type=int, default=20)
    parser.add_argument("--workdir", default="workdir/recipe_retrofit")
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    if args.data:  # a hash of each file's path splits the folder (one file is both)
        train_texts = text_files_corpus(args.data, split="train").texts[: args.max_documents]
        validation_texts = text_files_corpus(args.data, split="validation").texts[:20]
    else:
        train_texts = python_source_corpus("train", max_documents=args.max_documents).texts
        validation_texts = python_source_corpus("validation", max_documents=20).texts

    memory = dict(
        memory_layer=args.memory_layer,
        memory_size=args.memory_size,
        num_neighbors=args.num_neighbors,
        window_length=args.window_length,
        stateful=True,
    )
    if args.preset:
        import keras_hub  # imported on use: it pulls in TensorFlow Text

        tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(args.preset)
        special = special_token_ids(tokenizer)
        model = RetrofitLM.from_preset(args.preset, **memory)  # pad id from the tokenizer
        encode = keras_hub_encoder(tokenizer)
        learning_rate = 1e-3 if args.freeze_backbone else 1e-4
    else:
        special = {"bos_id": BOS_ID, "eos_id": EOS_ID, "pad_id": PAD_ID}
        model = RetrofitLM(tiny_gpt2(args.segment_length), pad_token_id=PAD_ID, **memory)
        encode = ByteTokenizer().encode
        learning_rate = 3e-3
    learning_rate = args.learning_rate or learning_rate

    def stream(texts, seed=None):
        documents = [encode(text) for text in texts]
        return SegmentStream(
            documents,
            args.batch_size,
            args.segment_length,
            seed=seed,
            vocab_size=model.vocab_size,
            **special,
        )

    train = stream(train_texts, seed=0)
    validation = stream(validation_texts)

    if args.freeze_backbone:
        model.backbone.trainable = False  # only the memory block (norm + KNNAttention) trains
    # The default loss ignores `pad_token_id` targets, i.e. the stream's padding.
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate))
    backbone = bits_per_token(backbone_logits_fn(model.backbone), validation, args.eval_steps)
    before = evaluate(model, validation, args.eval_steps)
    model.fit(
        StepWindow(train, first_step=0, num_steps=args.steps),
        epochs=1,
        callbacks=[CheckpointEvery(args.workdir, every=100)],
    )
    after = evaluate(model, validation, args.eval_steps)
    report = {
        "backbone_bits_per_token": backbone["bits_per_token"],
        "bits_per_token_before": before["bits_per_token"],
        "bits_per_token_after": after["bits_per_token"],
        "validation_tokens": after["tokens"],
        "trainable_parameters": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
    }
    print(json.dumps(report))


def tiny_gpt2(segment_length):
    """A small random GPT-2 over `ByteTokenizer`'s 259 ids (the offline default)."""
    import keras_hub

    return keras_hub.models.GPT2Backbone(
        vocabulary_size=ByteTokenizer.vocab_size,
        num_layers=3,
        num_heads=4,
        hidden_dim=64,
        intermediate_dim=256,
        dropout=0.0,
        max_sequence_length=segment_length,
    )


def keras_hub_encoder(tokenizer):
    """`text -> int32 ids` with a keras-hub tokenizer (no start/end tokens added)."""

    def encode(text):
        return np.asarray(keras.ops.convert_to_numpy(tokenizer(text)), dtype=np.int32)

    return encode


def backbone_logits_fn(backbone):
    """The plain backbone's logits for a segment (positions restart at 0, as in RetrofitLM)."""

    def logits(inputs):
        ids = inputs["tokens"]
        hidden = backbone.predict_on_batch({"token_ids": ids, "padding_mask": np.ones_like(ids)})
        return backbone.token_embedding(hidden, reverse=True)

    return logits


def evaluate(model, stream, max_steps):
    """Validation bits per token of a stateful model, from a fresh memory."""
    model.build_from_data(stream)
    model.reset_state()
    try:
        return bits_per_token(model.predict_on_batch, stream, max_steps)
    finally:
        model.reset_state()


def bits_per_token(logits_fn, stream, max_steps):
    """Mean bits per real target token over the first `max_steps` steps of `stream`.

    Like `keras_memory.training.evaluate_bits_per_token`, for any logits
    function (here also the plain backbone), ignoring the stream's `pad_id`.
    """
    pad_id = stream.special_ids["pad_id"]
    total_nats, total_tokens = 0.0, 0
    for step in range(min(max_steps, len(stream))):
        inputs, targets = stream[step]
        logits = keras.ops.convert_to_numpy(logits_fn(inputs))
        nats, tokens = target_nats(logits, targets, pad_id)
        total_nats += nats
        total_tokens += tokens
    return {
        "bits_per_token": total_nats / max(total_tokens, 1) / math.log(2),
        "tokens": total_tokens,
    }


if __name__ == "__main__":
    main()
