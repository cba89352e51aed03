"""What a user meets in the first hour, through the real `keras-memory` entry point.

Each test runs the installed console script in a subprocess and checks the
exit code, that an error is one line naming the flag (never a traceback),
and that a refused command leaves the workdir's checkpoints byte-identical.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_memory.training import load_checkpoint, save_checkpoint

KERAS_MEMORY = os.path.join(os.path.dirname(sys.executable), "keras-memory")
SMALL_RUN = (
    "--batch-size", "2", "--segment-length", "32", "--window-length", "16",
)  # fmt: skip


def user_environment():
    """This process's environment as a user's shell has it: importing TensorFlow here
    set `TF_CPP_MIN_LOG_LEVEL`, which the command would otherwise respect."""
    return {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}


def run_cli(*argv, env=None, cwd=None, timeout=600):
    environment = {**user_environment(), "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [KERAS_MEMORY, *argv],
        capture_output=True,
        text=True,
        env=environment,
        cwd=cwd,
        timeout=timeout,
    )


def error_line(result, code=2):
    """The error's one line; fails on another exit code or a traceback."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("keras-memory"), result.stderr
    return lines[-1]


def checkpoint_digests(workdir):
    digests = {}
    root = os.path.join(workdir, "checkpoints")
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                digests[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return digests


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("docs")
    rng = np.random.default_rng(0)
    for i in range(8):
        words = rng.choice(["alpha", "beta", "gamma", "delta", "\n"], size=60 + 40 * i)
        (folder / f"doc{i}.txt").write_text(" ".join(words))
    (folder / "image.bin").write_bytes(b"\xff\xfe\xfd")
    return str(folder)


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    """A workdir holding a 2-step xl run, checkpointed at each step."""
    workdir = str(tmp_path_factory.mktemp("trained") / "run")
    result = run_cli(
        "train", "--data", corpus, "--workdir", workdir, "--steps", "2",
        "--checkpoint-every", "1", *SMALL_RUN,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # Quiet: no TensorFlow/CUDA start-up notices; the skipped file named; a loss curve.
    assert "cuInit" not in result.stderr and "oneDNN" not in result.stderr, result.stderr
    assert "Skipped 1 file(s): " in result.stderr and "image.bin (not UTF-8)" in result.stderr
    assert os.path.exists(os.path.join(workdir, "loss.png"))
    return workdir


@pytest.fixture
def trained_copy(trained, tmp_path):
    workdir = str(tmp_path / "copy")
    shutil.copytree(trained, workdir)
    return workdir


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["train", "--segment-length", "0"], "--segment-length"),
        (["train", "--window-length", "0"], "--window-length"),
        (["train", "--checkpoint-every", "-5"], "--checkpoint-every"),
        (["train", "--learning-rate", "-1"], "--learning-rate"),
        (["train", "--learning-rate", "nan"], "--learning-rate"),
        (["train", "--max-documents", "-1"], "--max-documents"),
        (["train", "--steps", "0"], "--steps"),
        (["train", "--memory-size", "0"], "--memory-size"),
        (["train", "--distances", "64,x"], "--distances"),
        (["train", "--seed", "-1"], "--seed"),
        (["train", "--segment-lenght", "64"], "--segment-lenght"),
        (["evaluate", "--max-steps", "0"], "--max-steps"),
        (["evaluate", "--max-steps", "-1"], "--max-steps"),
        (["generate", "--top-p", "0"], "--top-p"),
        (["generate", "--temperature", "-1"], "--temperature"),
        (["generate", "--temperature", "0"], "--temperature: expected a number > 0"),
        (["generate", "--max-new-tokens", "0"], "--max-new-tokens"),
        (["generate", "--num-tokens", "0"], "--max-new-tokens"),
        (["generate", "--prompt", "a", "--prompt-file", "p"], "--prompt-file"),
        (["generate", "--sampler", "beam"], "--sampler"),
        (["generate", "--data", "x"], "--data"),
    ],
)
def test_a_bad_flag_is_one_line_naming_it_and_touches_nothing(argv, flag, tmp_path):
    workdir = str(tmp_path / "run")
    result = run_cli(*argv, "--workdir", workdir)
    line = error_line(result)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert line.startswith(f"keras-memory {argv[0]}: error:") and flag in line, line
    assert not os.path.exists(workdir)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--temperature", "0"], "use --sampler greedy"),
        (
            ["--top-p", "0.5"],
            "--sampler top_k does not read it: --top-p is read by --sampler top_p",
        ),
        (["--sampler", "greedy", "--top-k", "5"], "--sampler greedy does not read it: --top-k"),
        (["--prompt-file", "/nonexistent/prompts.txt"], "--prompt-file /nonexistent/prompts.txt"),
        (["--prompt-file", os.devnull], f"--prompt-file {os.devnull} holds no prompt"),
    ],
)
def test_generate_refuses_sampling_and_prompt_flags_before_reading_the_run(argv, message, tmp_path):
    result = run_cli("generate", *argv, "--workdir", str(tmp_path / "run"))
    line = error_line(result)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert line.startswith("keras-memory generate: error:") and message in line, line


def test_help_shows_the_defaults():
    result = run_cli("train", "--help")
    assert result.returncode == 0 and result.stderr == ""
    text = " ".join(result.stdout.split())
    for shown in ("Total training steps. (default: 200)", "(default: 8)", "default: 0.003"):
        assert shown in text, shown


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train"], "already holds a checkpoint"),
        (["train", "--resume", "--segment-length", "64"], "--segment-length 64 (saved: 32)"),
        (["train", "--resume", "--kind", "memorizing"], "--kind memorizing (saved: xl)"),
        (["train", "--resume", "--memory-size", "64"], "--memory-size is an option of"),
        (["evaluate", "--memory-size", "64"], "--memory-size: the run's --kind xl"),
        (["evaluate", "--data", "/nonexistent/folder"], "--data '/nonexistent/folder'"),
        (["generate", "--stop", "ab"], "--stop 'ab' encodes to 2 tokens"),
        (["generate", "--top-k", "300"], "--top-k 300 is larger than the run's vocabulary"),
    ],
)
def test_refused_commands_leave_the_checkpoints_byte_identical(argv, message, trained):
    before = checkpoint_digests(trained)
    line = error_line(run_cli(*argv, "--workdir", trained))
    assert message in line, line
    assert checkpoint_digests(trained) == before


def test_resume_takes_the_saved_configuration_and_evaluate_the_saved_data(
    trained_copy, corpus, tmp_path
):
    # A save killed midway left a temporary folder: the next run removes it.
    stale = os.path.join(trained_copy, "checkpoints", ".tmp-step-00000003-999999")
    os.makedirs(stale)
    # From another directory, with no option repeated: the saved ones apply; a new
    # learning rate applies from the resumed step on, and is said so.
    result = run_cli(
        "train", "--workdir", trained_copy, "--resume", "--steps", "3",
        "--learning-rate", "1e-4", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "--learning-rate 0.0001 from step 2 on (was 0.003)" in result.stdout
    assert not os.path.exists(stale)
    model, progress = load_checkpoint(trained_copy)
    assert progress["step"] == 3 and progress["run_config"]["segment_length"] == 32
    assert progress["learning_rate"] == 1e-4
    assert np.isclose(float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)), 1e-4)
    assert progress["run_config"]["data"] == os.path.abspath(corpus)
    result = run_cli("evaluate", "--workdir", trained_copy, "--max-steps", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["data"] == os.path.abspath(corpus) and record["split"] == "validation"


def test_default_backend_is_jax_whatever_keras_json_says(trained, tmp_path):
    home = tmp_path / "home"
    (home / ".keras").mkdir(parents=True)
    (home / ".keras" / "keras.json").write_text(json.dumps({"backend": "tensorflow"}))
    env = {key: value for key, value in user_environment().items() if key != "KERAS_BACKEND"}
    env.update(HOME=str(home), PYTHONUNBUFFERED="1")
    result = subprocess.run(
        [KERAS_MEMORY, "evaluate", "--workdir", trained, "--max-steps", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["backend"] == "jax"


def test_a_memory_larger_than_the_machine_is_refused_before_allocation(corpus, tmp_path):
    workdir = str(tmp_path / "run")
    line = error_line(
        run_cli(
            "train", "--data", corpus, "--workdir", workdir, "--kind", "memorizing",
            "--memory-size", str(2**40), *SMALL_RUN,
        )
    )  # fmt: skip
    assert "GiB" in line and "of RAM" in line and "--memory-size 1099511627776" in line, line
    assert load_checkpoint(workdir) == (None, None)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write any folder")
def test_a_read_only_workdir_is_one_line(corpus, tmp_path):
    workdir = tmp_path / "read-only"
    workdir.mkdir()
    workdir.chmod(0o500)
    try:
        line = error_line(run_cli("train", "--data", corpus, "--workdir", str(workdir)))
    finally:
        workdir.chmod(0o700)
    assert "is not writable" in line, line


def test_generate_without_top_k(trained):
    result = run_cli(
        "generate", "--workdir", trained, "--prompt", "alpha", "--max-new-tokens", "8",
        "--top-k", "0", "--temperature", "1.5", "--stop", "\\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("alpha") and result.stdout.endswith("\n")
    assert "tokens/s" in result.stderr


@pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="sets its own KERAS_BACKEND: the same command in every backend's pass",
)
def test_a_backend_keras_memory_cannot_run_on_is_one_line(tmp_path):
    env = {"KERAS_BACKEND": "mxnet"}
    line = error_line(run_cli("evaluate", "--workdir", str(tmp_path / "w"), env=env))
    assert "KERAS_BACKEND=mxnet" in line
    assert run_cli("train", "--help", env=env).returncode == 0
    # --backend overrides it: the command gets as far as the workdir.
    line = error_line(
        run_cli("evaluate", "--backend", "jax", "--workdir", str(tmp_path / "w"), env=env)
    )
    assert "--workdir" in line and "does not exist" in line


def test_workdir_that_is_a_file_or_under_one_is_one_line(corpus, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for workdir, message in [(a_file, "is a file"), (a_file / "run", "cannot be created")]:
        line = error_line(run_cli("train", "--data", corpus, "--workdir", str(workdir)))
        assert f"--workdir {workdir}" in line and message in line, line
    line = error_line(run_cli("evaluate", "--workdir", str(a_file)))
    assert "is a file" in line


def test_a_diverging_run_stops_before_a_nan_checkpoint(trained_copy):
    result = run_cli(
        "train", "--workdir", trained_copy, "--resume", "--steps", "8",
        "--learning-rate", "1e12", "--checkpoint-every", "1",
    )  # fmt: skip
    line = error_line(result, code=1)
    assert "training diverged at step" in line and "is kept" in line, line
    model, progress = load_checkpoint(trained_copy)
    for weight in model.weights:
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(weight))), weight.path


def test_evaluate_writes_valid_json_for_a_nan_model(trained_copy):
    model, progress = load_checkpoint(trained_copy)
    embedding = model.token_embedding.embeddings
    embedding.assign(np.full(embedding.shape, np.nan, dtype="float32"))
    save_checkpoint(
        model, trained_copy, progress["step"] + 1, {"run_config": progress["run_config"]}
    )
    result = run_cli("evaluate", "--workdir", trained_copy, "--max-steps", "1")
    line = error_line(result, code=1)
    assert "not finite" in line
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["bits_per_token"] is None


def test_damaged_progress_and_losses_files_are_named(trained_copy):
    losses = os.path.join(trained_copy, "losses.jsonl")
    with open(losses, "a") as f:
        f.write('{"step": 3, "lo')  # a run killed while appending
    result = run_cli("train", "--workdir", trained_copy, "--resume", "--steps", "3")
    assert result.returncode == 0, result.stderr
    with open(losses) as f:
        assert [json.loads(line)["step"] for line in f] == [1, 2, 3]
    newest = sorted(os.listdir(os.path.join(trained_copy, "checkpoints")))[-1]
    progress_path = os.path.join(trained_copy, "checkpoints", newest, "progress.json")
    with open(progress_path) as f:
        progress = json.load(f)
    del progress["run_config"]
    with open(progress_path, "w") as f:
        json.dump(progress, f)
    for command in (["evaluate"], ["generate"], ["train", "--resume", "--steps", "9"]):
        line = error_line(run_cli(*command, "--workdir", trained_copy))
        assert "progress.json has no run configuration" in line, line


def test_a_run_whose_tokenizer_is_gone_is_refused_not_read_as_bytes(trained_copy):
    # A subword run's files deleted: its config says sentencepiece, the files are gone.
    newest = sorted(os.listdir(os.path.join(trained_copy, "checkpoints")))[-1]
    progress_path = os.path.join(trained_copy, "checkpoints", newest, "progress.json")
    with open(progress_path) as f:
        progress = json.load(f)
    progress["run_config"]["tokenizer"] = "sentencepiece"
    with open(progress_path, "w") as f:
        json.dump(progress, f)
    os.remove(os.path.join(trained_copy, "tokenizer.json"))
    for command in ("evaluate", "generate"):
        line = error_line(run_cli(command, "--workdir", trained_copy))
        assert "--tokenizer sentencepiece" in line and "missing" in line, line


def test_ctrl_c_stops_at_a_step_and_says_how_to_resume(corpus, tmp_path):
    workdir = str(tmp_path / "run")
    process = subprocess.Popen(
        [
            KERAS_MEMORY, "train", "--data", corpus, "--workdir", workdir, "--steps", "100000",
            "--checkpoint-every", "2", "--progress-every", "1", *SMALL_RUN,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**user_environment(), "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        for line in process.stdout:
            if line.startswith("step 3/"):
                break
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert "interrupted at step" in last and f"--workdir {workdir} --resume" in last, last
    model, progress = load_checkpoint(workdir)
    assert progress["step"] >= 2
