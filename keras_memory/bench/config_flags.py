"""The flags that pick a speed config: shared by `bench speed` and `bench ceiling`.

Kept free of Keras imports, so the `keras-memory` parser is built before the
backend is chosen.
"""

from keras_memory.bench.configs import SPEED_CONFIGS


def add_config_flags(parser):
    """Adds `--config`, `--steps`, `--warmup`, `--precision` and the size overrides."""
    parser.add_argument(
        "--config",
        default="tiny",
        help=f"One of {', '.join(SPEED_CONFIGS)} (the reference configs of the speed figures) "
        "or a preset name (batch 8).",
    )
    parser.add_argument("--steps", type=int, default=10, help="Timed steps.")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed steps first.")
    parser.add_argument(
        "--precision",
        default=None,
        choices=("float32", "mixed_bfloat16"),
        help="Default: the config's (p150: mixed_bfloat16), else float32.",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="Default: the config's.")
    parser.add_argument("--segment-length", type=int, default=None)
    parser.add_argument("--window-length", type=int, default=None)
    parser.add_argument("--vocab-size", type=int, default=None)
