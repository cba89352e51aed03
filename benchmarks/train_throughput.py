"""Training throughput: `keras-memory bench speed` run from a checkout.

Every option of `keras-memory bench speed --help`; `--preset` is accepted for
`--config`, its name before the command existed.

Reproduce (from the repository root):
    KERAS_BACKEND=jax .venv/bin/python benchmarks/train_throughput.py --config tiny --kind xl,local
    KERAS_BACKEND=jax .venv/bin/python benchmarks/train_throughput.py --config d512 \\
        --kind xl,block_recurrent,memorizing --memory-size 16384 --steps 3 --warmup 1 \\
        --peers --peer-path /tmp/peer_pkgs
"""

import sys

from keras_memory.cli import main

if __name__ == "__main__":
    main(["bench", "speed", *("--config" if a == "--preset" else a for a in sys.argv[1:])])
