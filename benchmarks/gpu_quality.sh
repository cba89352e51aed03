#!/usr/bin/env bash
# Issue #27, item 5: the quality comparison at the d512 size on one GPU, in at most
# 10 minutes of device time: xl against an 8k-entry kNN memory on the code corpus with a
# SentencePiece vocabulary of 8,192, bits per byte per model as JSON lines.
#
#   bash benchmarks/gpu_quality.sh            # on the GPU machine, from the repository root
#
# Every setting is an environment variable, so CI runs the same script at the tiny size
# (tests/bench/test_gpu_quality_script.py). Not yet run on a GPU: no session has had one.
set -euo pipefail
cd "$(dirname "$0")/.."
KERAS_MEMORY=${KERAS_MEMORY:-$( [ -x .venv/bin/keras-memory ] && echo .venv/bin/keras-memory || echo keras-memory )}
PRESET=${PRESET:-small_d512}
MODELS=${MODELS:-xl,memorizing_8k}
TOKENIZER=${TOKENIZER:-sentencepiece}
VOCAB_SIZE=${VOCAB_SIZE:-8192}
STEPS=${STEPS:-1000}
EVAL_STEPS=${EVAL_STEPS:-100}
BATCH_SIZE=${BATCH_SIZE:-8}
OUTPUT=${OUTPUT:-benchmarks/results/quality_d512_gpu.jsonl}
export KERAS_BACKEND=${KERAS_BACKEND:-jax}

echo "gpu_quality: $PRESET, $MODELS, $TOKENIZER $VOCAB_SIZE, $STEPS steps, $KERAS_BACKEND, $(date -u +%FT%TZ)"
"$KERAS_MEMORY" bench quality --corpora code --preset "$PRESET" --models "$MODELS" \
    --tokenizer "$TOKENIZER" --vocab-size "$VOCAB_SIZE" --steps "$STEPS" \
    --eval-steps "$EVAL_STEPS" --batch-size "$BATCH_SIZE" --output "$OUTPUT"
echo "gpu_quality: wrote $OUTPUT"
