"""The console script re-runs itself with tcmalloc preloaded where it is installed."""

import os
import subprocess
import sys

import pytest

import keras_memory_command
from keras_memory_command import tcmalloc_library

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="LD_PRELOAD")


@linux_only
def test_the_library_is_found_unless_off_or_already_preloaded(tmp_path):
    (tmp_path / "libtcmalloc_minimal.so.4").write_bytes(b"")
    found = str(tmp_path / "libtcmalloc_minimal.so.4")
    assert tcmalloc_library({}, [str(tmp_path / "none"), str(tmp_path)]) == found
    assert tcmalloc_library({"KERAS_MEMORY_TCMALLOC": "0"}, [str(tmp_path)]) is None
    assert tcmalloc_library({"LD_PRELOAD": found}, [str(tmp_path)]) is None  # no second re-run
    jemalloc = {"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"}
    assert tcmalloc_library(jemalloc, [str(tmp_path)]) is None  # the user's allocator stays
    assert tcmalloc_library({}, [str(tmp_path / "none")]) is None  # not installed: as before


class Replaced(Exception):
    """Raised by the stand-in `os.execve`: the process would have been replaced."""


def capture_rerun(monkeypatch, argv):
    """Runs the console script's `main` with `argv` and tcmalloc "installed".

    Returns what it handed `os.execve` (`path`, `args`, `env`), or `{}`
    where it ran without re-running.
    """
    ran = {}

    def execve(path, args, env):
        ran.update(path=path, args=args, env=env)
        raise Replaced

    monkeypatch.setattr(keras_memory_command, "tcmalloc_library", lambda environ: "/lib/tc.so")
    monkeypatch.setattr(keras_memory_command.os, "execve", execve)
    monkeypatch.setattr(sys, "argv", ["keras-memory", *argv])
    with pytest.raises((Replaced, SystemExit)):
        keras_memory_command.main()
    return ran


@linux_only
def test_the_console_script_reruns_itself_with_the_library(monkeypatch, capsys):
    monkeypatch.setenv("LD_PRELOAD", "/lib/other.so")
    ran = capture_rerun(monkeypatch, ["bench", "ceiling", "--config", "tiny"])
    assert ran["path"] == sys.executable
    assert ran["args"][-4:] == ["bench", "ceiling", "--config", "tiny"]
    assert ran["env"]["LD_PRELOAD"] == "/lib/tc.so /lib/other.so"
    assert capsys.readouterr().err == ""  # an error of the command stays its one line
    # --help runs as it is.
    assert capture_rerun(monkeypatch, ["train", "--help"]) == {}


@linux_only
def test_the_rerun_runs_the_same_command_and_not_the_working_directory(monkeypatch, tmp_path):
    # The command the re-run executes, run here without a preload from a
    # folder holding another `keras_memory_command` (`python -c` alone would
    # put the working directory first on sys.path): it must reach this
    # checkout's parser, where a bad flag answers in one line, exit 2.
    ran = capture_rerun(monkeypatch, ["train", "--max-documents", "0"])
    (tmp_path / "keras_memory_command.py").write_text("raise SystemExit('the working directory')\n")
    done = subprocess.run(
        ran["args"],
        cwd=tmp_path,
        env={**os.environ, "KERAS_MEMORY_TCMALLOC": "0"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "argument --max-documents: expected an int >= 1" in done.stderr.strip().splitlines()[-1]


@linux_only
@pytest.mark.skipif(tcmalloc_library(os.environ) is None, reason="tcmalloc is not installed")
def test_train_runs_with_tcmalloc_and_names_its_allocator(tmp_path):
    from tests.test_cli import train_args, write_corpus

    corpus = write_corpus(tmp_path / "docs")
    command = os.path.join(os.path.dirname(sys.executable), "keras-memory")
    lines = {}
    for setting in ("1", "0"):
        done = subprocess.run(
            [command, *train_args(corpus, str(tmp_path / f"run{setting}"), 1)],
            env={**os.environ, "KERAS_MEMORY_TCMALLOC": setting},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        lines[setting] = done.stdout
    assert "(tcmalloc allocator)" in lines["1"]
    assert "(default allocator)" in lines["0"]
