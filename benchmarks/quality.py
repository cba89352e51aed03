"""Quality evidence: every memory model trained alike, validation bits per byte.

The same as `keras-memory bench quality` (see `keras_memory/bench/quality.py`
and docs/results.md); one JSON line per (corpus, model). From the repository root:

    KERAS_BACKEND=jax .venv/bin/python benchmarks/quality.py \\
        --output benchmarks/results/quality_tiny_cpu.jsonl --plot docs/images
"""

import sys

from keras_memory.cli import main

if __name__ == "__main__":
    main(["bench", "quality", *sys.argv[1:]])
