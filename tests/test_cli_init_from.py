"""`train --init-from RUN`: a memory added to a trained run starts from its weights."""

import json
import os

import numpy as np
import pytest

from keras_memory.cli import main
from keras_memory.training import load_checkpoint
from tests.conftest import to_numpy
from tests.test_cli import train_args, write_corpus

MEMORY = ("--kind", "memorizing", "--local-position-bias", "--memory-size", "64")


def embedding(model):
    return to_numpy(model.token_embedding.embeddings)


def test_a_trained_xl_run_starts_a_memorizing_run(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "docs")
    xl_run, memory_run = str(tmp_path / "xl"), str(tmp_path / "memory")
    main(train_args(corpus, xl_run, 3))
    capsys.readouterr()
    # A learning rate too small to move anything: the weights are the source's.
    main(
        train_args(
            corpus, memory_run, 3, *MEMORY, "--init-from", xl_run, "--learning-rate", "1e-12"
        )
    )
    printed = capsys.readouterr().out
    assert "new weights: block_1/attention_1/memory_gate; left behind: none." in printed
    source, _ = load_checkpoint(xl_run)
    model, progress = load_checkpoint(memory_run)
    assert progress["run_config"]["init_from"] == os.path.abspath(xl_run)
    assert type(model.blocks[1].attention).__name__ == "KNNAttention"
    np.testing.assert_allclose(embedding(model), embedding(source), atol=1e-6)
    # The run resumes as any other (its own checkpoint, not the source's
    # weights again) and evaluates with the tokenizer it took over.
    main(train_args(corpus, memory_run, 4, "--resume"))
    assert load_checkpoint(memory_run)[1]["step"] == 4
    capsys.readouterr()
    main(["evaluate", "--data", corpus, "--workdir", memory_run])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["step"] == 4 and 0 < result["bits_per_token"] < 12


def test_an_init_from_that_cannot_start_the_run_is_one_clear_line(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "docs")
    xl_run = str(tmp_path / "xl")
    main(train_args(corpus, xl_run, 3))
    new = str(tmp_path / "new")
    for extra, message in [
        (("--init-from", str(tmp_path / "nowhere")), "is not a folder"),
        (("--init-from", str(tmp_path / "docs")), "holds no checkpoint to start from"),
        (("--init-from", xl_run, "--tokenizer", "bytes"), "drop --tokenizer"),
        (("--init-from", xl_run, "--vocab-size", "500"), "drop --vocab-size"),
        (("--init-from", xl_run, "--warm-start", "opt_125m_en"), "give one"),
        (
            ("--init-from", xl_run, "--embedding-dim", "32"),
            "differ in size at token_embedding/embeddings",
        ),
    ]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            main(train_args(corpus, new, 2, *MEMORY, *extra))
        error = capsys.readouterr().err.strip().splitlines()
        assert exit_info.value.code == 2 and message in error[-1], (extra, error)
        assert "--init-from" in error[-1]
        assert set(os.listdir(new)) <= {".lock"}  # nothing was written
    with pytest.raises(SystemExit):
        main(train_args(corpus, xl_run, 4, "--init-from", xl_run))
