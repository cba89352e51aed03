"""The `keras-memory` command: train, evaluate, generate, the demo and the benchmarks.

One module per command (`train`, `evaluate`, `generate`, `demo`, `bench`),
each with its flags (`add_arguments`) and its body (`run`); `parser` puts
them together and `dispatch.main` is the console script. The memory-kind
flags come from the kind registry (`kind_flags`).
"""

from keras_memory.cli.dispatch import main
from keras_memory.cli.parser import build_parser

__all__ = ["build_parser", "main"]
