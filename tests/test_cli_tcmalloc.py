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


@linux_only
def test_the_console_script_reruns_itself_with_the_library(monkeypatch, capsys):
    ran = {}

    class Replaced(Exception):
        pass

    def execve(path, args, env):
        ran.update(path=path, args=args, env=env)
        raise Replaced

    monkeypatch.setattr(keras_memory_command, "tcmalloc_library", lambda environ: "/lib/tc.so")
    monkeypatch.setattr(keras_memory_command.os, "execve", execve)
    monkeypatch.setattr(sys, "argv", ["keras-memory", "bench", "ceiling", "--config", "tiny"])
    monkeypatch.setenv("LD_PRELOAD", "/lib/other.so")
    with pytest.raises(Replaced):
        keras_memory_command.main()
    assert ran["path"] == sys.executable
    assert ran["args"][-4:] == ["bench", "ceiling", "--config", "tiny"]
    assert ran["env"]["LD_PRELOAD"] == "/lib/tc.so /lib/other.so"
    assert capsys.readouterr().err == ""  # an error of the command stays its one line
    # --help, and callers passing their own argv, run as they are.
    monkeypatch.setattr(sys, "argv", ["keras-memory", "train", "--help"])
    with pytest.raises(SystemExit):
        keras_memory_command.main()
    assert "path" in ran and ran["args"][-1] == "tiny"


@linux_only
def test_the_rerun_does_not_import_from_the_working_directory(monkeypatch, tmp_path):
    # Run from a folder holding another checkout, the re-run must still run
    # the keras_memory this command imported (`python -c` alone would put the
    # working directory first on sys.path).
    ran = {}

    class Replaced(Exception):
        pass

    def execve(path, args, env):
        ran.update(args=args)
        raise Replaced

    monkeypatch.setattr(keras_memory_command, "tcmalloc_library", lambda environ: "/lib/tc.so")
    monkeypatch.setattr(keras_memory_command.os, "execve", execve)
    monkeypatch.setattr(sys, "argv", ["keras-memory", "train", "--max-documents", "0"])
    with pytest.raises(Replaced):
        keras_memory_command.main()
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
    assert "argument --max-documents: expected an int >= 1" in done.stderr


@linux_only
def test_the_rerun_command_runs_the_same_command(tmp_path):
    # The command the re-run executes, run here without a preload: it must
    # reach the same parser (a bad flag answers in one line, exit 2).
    done = subprocess.run(
        [sys.executable, "-c", "import keras_memory_command; keras_memory_command.main()",
         "train", "--max-documents", "0"],
        env={**os.environ, "KERAS_MEMORY_TCMALLOC": "0"},
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 2
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
