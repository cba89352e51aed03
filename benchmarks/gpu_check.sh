#!/usr/bin/env bash
# Issue #29: the speed goals on one GPU, in at most 8 minutes of device time.
#
#   bash benchmarks/gpu_wheels.sh      # here, where pip reaches the index: wheels into .whl/
#   bash benchmarks/gpu_check.sh       # on the GPU machine (carry .whl), from the repository root
#
# It installs what the GPU machine's Python lacks from the wheels in $WHEELS (keras and
# keras-hub, the PyTorch peers and their needs), then times, each as JSON lines in
# $OUTPUT_DIR: `bench speed --peers` for every kind on $CONFIG (P150: d1024, 12 layers,
# segments of 4,096 in windows of 512, batch 8, mixed_bfloat16), `bench ceiling` (the plain
# Keras decoder the XL goal is read against), the kNN lookup at $KNN_SIZES entries, and
# `bench generate`; then prints the goal table (`python -m keras_memory.bench.goals`) into
# $OUTPUT_DIR/goals.md. Each part has a time limit of its own (*_TIMEOUT seconds), so one that
# overruns or fails costs its own figures, not the rest (stderr says which, and the script
# then exits 1); `bench speed` writes each kind's line as it finishes, so an overrun keeps the
# kinds before it. The Memorizing peer cannot train in bfloat16 (P150's precision): its goal
# reads "not measured" there; PRECISION=float32 runs both sides in float32. Every setting is
# an environment variable, so CI runs the same script at the tiny size on the CPU
# (tests/bench/test_gpu_check_script.py).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
WHEELS=${WHEELS:-.whl}
SITE=${SITE:-/tmp/gpu_check_site}
CONFIG=${CONFIG:-p150}
KINDS=${KINDS:-xl,block_recurrent,memorizing,melodi}
MEMORY_SIZE=${MEMORY_SIZE:-65536}
STEPS=${STEPS:-5}
WARMUP=${WARMUP:-2}
PEERS=${PEERS:-1}
PEER_STEPS=${PEER_STEPS:-3}
KNN_SIZES=${KNN_SIZES:-65536,262144}
KNN_METHODS=${KNN_METHODS:-exact,approx}
GENERATE_PRESET=${GENERATE_PRESET:-medium_150m}
GENERATE_KINDS=${GENERATE_KINDS:-xl,block_recurrent,memorizing,melodi}
GENERATE_SEGMENT=${GENERATE_SEGMENT:-512}
PRECISION=${PRECISION:-}
# Seconds per part: 435 in all, leaving 45 of the 8 minutes to the install, imports and table.
SPEED_TIMEOUT=${SPEED_TIMEOUT:-240}
CEILING_TIMEOUT=${CEILING_TIMEOUT:-60}
KNN_TIMEOUT=${KNN_TIMEOUT:-45}
GENERATE_TIMEOUT=${GENERATE_TIMEOUT:-90}
# A new folder per run (on a lent machine, under $OUT so that it comes back): the benchmarks
# append to their files, and two runs' records must not be averaged together.
OUTPUT_DIR=${OUTPUT_DIR:-benchmarks/results/gpu_check_$(date -u +%Y-%m-%dT%H%M%S)}
export KERAS_BACKEND=${KERAS_BACKEND:-jax}

NEEDS="import keras, keras_hub"
[ "$PEERS" = 1 ] && NEEDS="$NEEDS, block_recurrent_transformer_pytorch, memorizing_transformers_pytorch"
if ! "$PYTHON" -c "$NEEDS" 2>/dev/null && ls "$WHEELS"/*.whl > /dev/null 2>&1; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" "$WHEELS"/*.whl || exit 2
    export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
fi
if ! "$PYTHON" -c "import keras, keras_hub" 2>/dev/null; then
    echo "gpu_check: keras or keras-hub is missing and $WHEELS holds no wheels; run benchmarks/gpu_wheels.sh where pip works and carry $WHEELS" >&2
    exit 2
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if [ -e "$OUTPUT_DIR" ]; then
    echo "gpu_check: OUTPUT_DIR $OUTPUT_DIR exists; name a new folder (records would mix with its runs')" >&2
    exit 2
fi
mkdir -p "$OUTPUT_DIR"
FAILED=0
SPEED_FLAGS=()
[ -n "$PRECISION" ] && SPEED_FLAGS+=(--precision "$PRECISION")
if [ "$PEERS" = 1 ]; then
    SPEED_FLAGS+=(--peers --peer-steps "$PEER_STEPS")
    [ -d "$SITE" ] && SPEED_FLAGS+=(--peer-path "$SITE")
fi

part() {  # part NAME SECONDS COMMAND...: one timed part; a failure is reported, the rest runs
    local name=$1 seconds=$2
    shift 2
    echo "gpu_check: $name ($(date -u +%T))" >&2
    timeout -k 10 "$seconds" "$@"
    local status=$?
    if [ "$status" -ne 0 ]; then
        echo "gpu_check: $name stopped (exit $status); its figures are missing" >&2
        FAILED=1
    fi
}

echo "gpu_check: $CONFIG, $KINDS, $KERAS_BACKEND, $(date -u +%FT%TZ)"
"$PYTHON" -c "import keras_memory.backend as b; print('gpu_check: device', b.device_name())"
part speed "$SPEED_TIMEOUT" "$PYTHON" -m keras_memory.cli bench speed --config "$CONFIG" --kind "$KINDS" \
    --memory-size "$MEMORY_SIZE" --steps "$STEPS" --warmup "$WARMUP" ${SPEED_FLAGS[@]+"${SPEED_FLAGS[@]}"} \
    --output "$OUTPUT_DIR/speed.jsonl"
part ceiling "$CEILING_TIMEOUT" "$PYTHON" -m keras_memory.cli bench ceiling --config "$CONFIG" \
    --attention block ${PRECISION:+--precision "$PRECISION"} \
    --steps "$STEPS" --warmup "$WARMUP" --output "$OUTPUT_DIR/ceiling.jsonl"
part knn "$KNN_TIMEOUT" "$PYTHON" benchmarks/knn_retrieval.py lookup --methods "$KNN_METHODS" \
    --memory-sizes "$KNN_SIZES" --repeats 3 > "$OUTPUT_DIR/knn.jsonl"
part generate "$GENERATE_TIMEOUT" "$PYTHON" -m keras_memory.cli bench generate --preset "$GENERATE_PRESET" \
    --kinds "$GENERATE_KINDS" --batch-sizes 1,8 --segment-lengths "$GENERATE_SEGMENT" \
    --new-tokens 32 --baseline-tokens 0 --repeats 2 --output "$OUTPUT_DIR/generate.jsonl"
"$PYTHON" -m keras_memory.bench.goals "$OUTPUT_DIR"/*.jsonl | tee "$OUTPUT_DIR/goals.md"
echo "gpu_check: wrote $OUTPUT_DIR"
exit "$FAILED"  # 1 where a part stopped: the table then lacks its figures
