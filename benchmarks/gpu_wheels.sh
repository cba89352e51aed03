#!/usr/bin/env bash
# The wheels benchmarks/gpu_check.sh installs on the GPU machine, downloaded here into $WHEELS
# (default .whl, ignored by git). The GPU machine reaches no index; its Python (3.12) already
# has jax, torch, numpy, einops, absl-py, h5py, ml-dtypes, rich, regex, tokenizers and
# sentencepiece (the device image's package list). kagglehub stays out:
# keras-hub imports it only for downloads, and without it keras-hub still imports.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=${WHEELS:-.whl}
PIP=${PIP:-$( [ -x .venv/bin/python ] && echo ".venv/bin/python -m pip" || echo "python3 -m pip" )}
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
$PIP download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]}" -d "$WHEELS" \
    "keras==$($PIP show keras | sed -n 's/^Version: //p')" \
    "keras-hub==$($PIP show keras-hub | sed -n 's/^Version: //p')" \
    namex optree \
    block-recurrent-transformer-pytorch==0.4.4 memorizing-transformers-pytorch==0.4.1 \
    einops-exts beartype faiss-cpu
ls "$WHEELS"
