import atexit
import os
import shutil
import tempfile

# One JAX compilation cache per test run, shared by the xdist workers and the
# commands the tests start (they inherit the environment): many tests compile
# the same tiny models' steps, in-process and in `keras-memory` subprocesses.
# On 2 cores it took the models, training and CLI-error tests from 334 to 292 s.
# Set before Keras imports JAX; the process that makes the folder removes it.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="keras-memory-tests-jax-cache-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

if keras.backend.backend() == "torch":
    import torch

    # The test models are tiny: torch's intra-op threads only contend (one
    # block-recurrent training step took 1.17 s with the default threads on 2
    # busy cores, 0.12 s with one).
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
    np.random.seed(1234)
    yield
    keras.config.set_dtype_policy("float32")


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


# The files that take longest (each starts commands or trains models; measured with
# `pytest --durations=80` on the jax backend, 2 workers, 2026-12-06), slowest first.
# Queued first so that the two workers end together: by default xdist queues files by
# their number of tests, so these few-test files came last and the jax suite's last
# minutes ran on one worker.
LONGEST_FILES = (
    "tests/test_distribution.py",
    "tests/test_recipes.py",
    "tests/test_cli_errors.py",
    "tests/test_cli.py",
    "tests/bench/test_gpu_check_script.py",
    "tests/bench/test_speed.py",
    "tests/test_cli_warm_start.py",
    "tests/bench/test_quality.py",
    "tests/test_backend_parity.py",
    "tests/ops/test_attention.py",
    "tests/training/test_checkpoints.py",
    "tests/memories/melodi/test_melodi_layer.py",
    "tests/memories/memorizing/test_copy_options.py",
    "tests/test_cli_fuzz.py",
)


def pytest_collection_modifyitems(config, items):
    # Only the order changes (`make test` passes `--no-loadscope-reorder`, so xdist keeps it).
    rank = {path: place for place, path in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
