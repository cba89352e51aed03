"""A property-based fuzz of `keras-memory train`'s numeric flags, through the real entry point.

Whatever the values, the command either trains (exit 0, a checkpoint) or
refuses in one line naming one of the flags typed (exit 2, no checkpoint);
never a traceback, never a run that quietly used something else. The
sampling flags of `generate` are fuzzed the same way, in this process.
"""

import contextlib
import io
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from keras_memory.training import load_checkpoint

KERAS_MEMORY = os.path.join(os.path.dirname(sys.executable), "keras-memory")

# Values of each flag: sane ones, and ones a user mistypes (0, negatives,
# NaN, words); a sane run is kept to two steps of a tiny model.
FLAG_VALUES = {
    "--steps": ["1", "2", "0", "-1", "two"],
    "--batch-size": ["1", "2", "0", "-3", "1.5"],
    "--segment-length": ["16", "32", "0", "-32", "nan"],
    "--window-length": ["8", "16", "0", "7"],
    "--checkpoint-every": ["0", "1", "-5"],
    "--learning-rate": ["1e-3", "0.01", "-1", "0", "nan", "inf"],
    "--max-documents": ["2", "4", "0", "-1"],
    "--seed": ["0", "3", "-1"],
    "--num-registers": ["0", "1", "-1"],
}
SANE = {
    "--steps": "2",
    "--batch-size": "2",
    "--segment-length": "32",
    "--window-length": "16",
    "--checkpoint-every": "1",
    "--learning-rate": "1e-3",
    "--max-documents": "4",
    "--seed": "0",
    "--num-registers": "1",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz-docs")
    rng = np.random.default_rng(1)
    for i in range(8):
        words = rng.choice(["alpha", "beta", "gamma", "\n"], size=80 + 30 * i)
        (folder / f"doc{i}.txt").write_text(" ".join(words))
    return str(folder)


@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(flags=st.fixed_dictionaries({flag: st.sampled_from(v) for flag, v in FLAG_VALUES.items()}))
@example(flags=SANE)
@example(flags={**SANE, "--window-length": "7"})
def test_numeric_flags_train_or_are_refused_in_one_line(flags, corpus, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("fuzz") / "run")
    argv = ["train", "--data", corpus, "--workdir", workdir, "--progress-every", "1"]
    for flag, value in flags.items():
        argv += [f"{flag}={value}"]  # `=`: a negative value is not read as a flag
    result = subprocess.run(
        [KERAS_MEMORY, *argv], capture_output=True, text=True, timeout=600, env=os.environ.copy()
    )
    assert "Traceback" not in result.stderr, result.stderr
    if result.returncode == 0:
        model, progress = load_checkpoint(workdir)
        assert progress["step"] == int(flags["--steps"])
        assert progress["run_config"]["segment_length"] == int(flags["--segment-length"])
        return
    assert result.returncode == 2, (flags, result.stderr)
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("keras-memory train: error:"), line
    assert any(flag in line for flag in flags), (flags, line)
    assert load_checkpoint(workdir) == (None, None)


# `generate`'s sampling flags: each sampler with the flags it reads and those it does not.
SAMPLING_VALUES = {
    "--sampler": ["greedy", "random", "top_k", "top_p", "beam", None],
    "--temperature": ["0.5", "1", "0", "-1", "nan", None],
    "--top-k": ["0", "5", "300", "-2", None],
    "--top-p": ["0.9", "1", "0", "1.5", None],
}


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    flags=st.fixed_dictionaries({flag: st.sampled_from(v) for flag, v in SAMPLING_VALUES.items()})
)
def test_sampling_flags_make_their_sampler_or_are_refused_in_one_line(flags):
    from keras_memory.cli import build_parser
    from keras_memory.cli.sampler_flags import SAMPLERS, check_sampler_flags, make_sampler

    typed = {flag: value for flag, value in flags.items() if value is not None}
    argv = ["generate", *(f"{flag}={value}" for flag, value in typed.items())]
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args = build_parser().parse_args(argv)
        check_sampler_flags(args)
        sampler = make_sampler(args, vocab_size=259)
    except SystemExit as error:  # argparse: a value out of range, a sampler unknown
        line = stderr.getvalue()
        assert error.code == 2 and line.count("\n") == 1, line
        assert any(f"argument {flag}" in line for flag in typed), line
        return
    except ValueError as error:  # a flag the sampler does not read, a k beyond the vocabulary
        assert "\n" not in str(error) and any(flag in str(error) for flag in typed), str(error)
        return
    name = args.sampler
    assert all(
        flag in ("--sampler", "--seed") or flag[2:].replace("-", "_") in SAMPLERS[name]
        for flag in typed
    )
    expected = {"greedy": "Greedy", "random": "Random", "top_p": "TopP"}.get(name, "TopK")
    if name == "top_k" and args.top_k == 0:
        expected = "Random"
    assert type(sampler).__name__ == f"{expected}Sampler"
    if name != "greedy":
        assert sampler.temperature == float(typed.get("--temperature", 0.8))
