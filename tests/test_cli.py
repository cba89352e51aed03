import json
import os
import re

import keras
import numpy as np
import pytest

from keras_memory.cli import main
from keras_memory.training import load_checkpoint


def write_corpus(folder):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        words = rng.choice(["alpha", "beta", "gamma", "delta", "\n"], size=40 + 30 * i)
        (folder / f"doc{i}.txt").write_text(" ".join(words))
    (folder / "binary.dat").write_bytes(b"\xff\xfe\xfd")
    return str(folder)


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(tmp_path / "docs")


@pytest.fixture(scope="module")
def generation_run(tmp_path_factory):
    """A workdir holding a 3-step xl run, for the tests of `generate`."""
    root = tmp_path_factory.mktemp("generation")
    main(train_args(write_corpus(root / "docs"), str(root / "run"), 3))
    return str(root / "run")


def train_args(corpus, workdir, steps, *extra):
    return [
        "train", "--data", corpus, "--workdir", workdir, "--steps", str(steps),
        "--batch-size", "2", "--segment-length", "32", "--window-length", "16",
        "--checkpoint-every", "3", *extra,
    ]  # fmt: skip


def read_losses(workdir):
    with open(os.path.join(workdir, "losses.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_train_evaluate_generate_end_to_end(corpus, tmp_path, capsys):
    workdir = str(tmp_path / "run")
    main(train_args(corpus, workdir, 4))
    assert [r["step"] for r in read_losses(workdir)] == [1, 2, 3, 4]
    assert os.listdir(os.path.join(workdir, "logs"))
    capsys.readouterr()
    main(["evaluate", "--data", corpus, "--workdir", workdir])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["step"] == 4 and result["tokens"] > 0
    assert 0 < result["bits_per_token"] < 12
    # `--num-tokens`: the older name of `--max-new-tokens`.
    main(["generate", "--workdir", workdir, "--prompt", "alpha", "--num-tokens", "40"])
    captured = capsys.readouterr()
    assert captured.out.startswith("alpha") and captured.out.endswith("\n")
    assert re.fullmatch(r"\d+ tokens in [\d.]+ s \([\d.]+ tokens/s\)\.", captured.err.strip())


def test_errors_are_one_clear_line_and_nonzero(corpus, tmp_path, capsys):
    workdir = str(tmp_path / "run")
    with pytest.raises(SystemExit) as exit_info:
        main(train_args(str(tmp_path / "missing"), workdir, 2))
    assert exit_info.value.code == 2
    assert "does not exist" in capsys.readouterr().err
    main(train_args(corpus, workdir, 2))
    for argv, message in [
        (train_args(corpus, workdir, 4), "already holds a checkpoint"),
        (
            train_args(corpus, workdir, 4, "--resume", "--seed", "7"),
            "these flags differ from it: --seed 7 (saved: 0)",
        ),
        (["evaluate", "--workdir", str(tmp_path / "empty")], "--workdir"),
        (
            ["train", "--max-documents", "0", "--workdir", str(tmp_path / "none")],
            "argument --max-documents: expected an int >= 1; got '0'",
        ),
        (
            train_args(corpus, str(tmp_path / "r2"), 2, "--segment-length", "40"),
            "not a multiple",
        ),
    ]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        error = capsys.readouterr().err.strip().splitlines()
        assert exit_info.value.code == 2 and message in error[-1], (argv, error)


def test_synthetic_task_training_and_recall_by_distance(tmp_path, capsys):
    workdir = str(tmp_path / "passkey")
    common = ["--data", "passkey", "--distances", "60,90", "--num-documents", "10"]
    main(
        [
            "train",
            *common,
            "--workdir",
            workdir,
            "--steps",
            "3",
            "--batch-size",
            "2",
            "--segment-length",
            "32",
            "--window-length",
            "16",
            "--checkpoint-every",
            "0",
        ]
    )
    capsys.readouterr()
    main(["evaluate", *common, "--workdir", workdir, "--recall-task", "passkey"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result["recall_by_distance"]) == {"60", "90"}
    assert all(0.0 <= a <= 1.0 for a in result["recall_by_distance"].values())
    with pytest.raises(SystemExit, match="2"):
        main(["evaluate", "--data", "passkey", "--distances", "6O", "--workdir", workdir])


def test_prose_facts_training_and_answer_bits_by_distance(tmp_path, capsys):
    # Facts told in the Python reference manual's prose, asked again later.
    workdir = str(tmp_path / "facts")
    common = ["--data", "prose-facts", "--distances", "160,400", "--num-documents", "10"]
    model_flags = ["--kind", "memorizing", "--memory-size", "64", "--smear-keys"]
    main([*train_args("unused", workdir, 3, *model_flags)[:1], *common,
          *train_args("unused", workdir, 3, *model_flags)[3:]])  # fmt: skip
    capsys.readouterr()
    main(["evaluate", "--workdir", workdir, "--recall-task", "prose-facts"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["data"] == "prose-facts"
    assert set(result["recall_by_distance"]) == set(result["answer_bits_by_distance"])
    assert set(result["recall_by_distance"]) == {"160", "400"}
    # An untrained model cannot know random letters: near or above chance.
    assert all(b > 3.0 for b in result["answer_bits_by_distance"].values())
    _, progress = load_checkpoint(workdir)
    config = progress["run_config"]
    assert config["fact_passages"] == "python-docs" and config["smear_keys"] is True


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--distances", "20"], "--distances must be >= 43 for prose-facts"),
        (["--fact-passages", "/no/such/folder"], "--fact-passages '/no/such/folder'"),
    ],
)
def test_prose_facts_refuses_what_it_cannot_lay_out(tmp_path, capsys, flags, message):
    args = ["train", "--data", "prose-facts", "--workdir", str(tmp_path / "r"), *flags]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--steps", "1"])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not os.path.exists(tmp_path / "r" / "checkpoints")


@pytest.mark.parametrize("tokenizer", ["sentencepiece", "bpe"])
def test_subword_tokenizer_is_trained_saved_and_reused(corpus, tmp_path, capsys, tokenizer):
    workdir = str(tmp_path / tokenizer)
    args = train_args(corpus, workdir, 2, "--tokenizer", tokenizer, "--vocab-size", "300")
    main(args)
    assert os.path.exists(os.path.join(workdir, "tokenizer.json"))
    model, _ = load_checkpoint(workdir)
    assert 259 < model.vocab_size <= 300
    main(
        train_args(corpus, workdir, 3, "--tokenizer", tokenizer, "--vocab-size", "300", "--resume")
    )
    capsys.readouterr()
    main(["evaluate", "--data", corpus, "--workdir", workdir])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["step"] == 3 and result["tokens"] > 0
    main(["generate", "--workdir", workdir, "--prompt", "beta", "--max-new-tokens", "5"])
    assert capsys.readouterr().out.startswith("beta")


def test_memorizing_kind_trains_and_checks_its_memory_size(corpus, tmp_path, capsys):
    workdir = str(tmp_path / "memorizing")
    main(
        train_args(
            corpus,
            workdir,
            2,
            "--kind",
            "memorizing",
            "--memory-size",
            "64",
            "--num-neighbors",
            "4",
        )
    )
    model, progress = load_checkpoint(workdir)
    assert progress["run_config"]["memory_size"] == 64
    assert type(model.blocks[-1].attention).__name__ == "KNNAttention"
    capsys.readouterr()
    main(["evaluate", "--data", corpus, "--workdir", workdir, "--memory-size", "256"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["memory_size"] == 256 and 0 < result["bits_per_token"] < 12
    with pytest.raises(SystemExit):
        main(
            train_args(
                corpus, str(tmp_path / "bad"), 2, "--kind", "memorizing", "--memory-size", "50"
            )
        )
    assert "multiple of the segment length" in capsys.readouterr().err


def test_memory_sizes_by_name():
    from keras_memory.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["train", "--memory-size", "64k"]).memory_size == 65536
    assert parser.parse_args(["train", "--memory-size", "4096"]).memory_size == 4096
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--memory-size", "lots"])


def test_model_is_another_name_for_kind():
    from keras_memory.cli import build_parser

    args = build_parser().parse_args(["train", "--model", "memorizing", "--memory-size", "8k"])
    assert args.kind == "memorizing" and args.memory_size == 8192


def test_block_recurrent_kind_trains_evaluates_and_generates(corpus, tmp_path, capsys):
    workdir = str(tmp_path / "recurrent")
    main(
        train_args(
            corpus,
            workdir,
            2,
            "--model",
            "block_recurrent",
            "--gate",
            "lstm",
            "--num-states",
            "8",
            "--feedback",
        )
    )
    model, progress = load_checkpoint(workdir)
    assert progress["run_config"]["gate"] == "lstm" and progress["run_config"]["num_states"] == 8
    assert progress["run_config"]["feedback"] is True
    recurrent = model.blocks[0].attention
    assert type(recurrent).__name__ == "BlockRecurrentAttention"
    assert (recurrent.gate, recurrent.variant, recurrent.num_states) == ("lstm", "skip", 8)
    # The other layer reads the state the recurrent layer writes.
    assert model.blocks[1].attention.read_recurrent_state
    capsys.readouterr()
    main(["evaluate", "--data", corpus, "--workdir", workdir])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["kind"] == "block_recurrent" and 0 < result["bits_per_token"] < 12
    main(["generate", "--workdir", workdir, "--prompt", "ab", "--num-tokens", "20"])
    assert capsys.readouterr().out.startswith("ab")


def test_melodi_kind_trains_with_its_memory_sizes_and_evaluates(corpus, tmp_path, capsys):
    workdir = str(tmp_path / "melodi")
    sizes = ["--summary-size", "4", "--long-term-memory-size", "16", "--long-term-increment", "2"]
    main(train_args(corpus, workdir, 2, "--model", "melodi", *sizes))
    model, progress = load_checkpoint(workdir)
    assert type(model).__name__ == "MelodiLM"
    assert progress["run_config"]["long_term_memory_size"] == 16
    # The other sizes come from the preset (tiny: 8 short-term tokens).
    assert [b.short_term_memory_size for b in model.blocks] == [8, 8]
    assert [b.long_term_memory_size for b in model.blocks] == [0, 16]
    assert model.blocks[0].summary_size == 4
    capsys.readouterr()
    main(["evaluate", "--data", corpus, "--workdir", workdir])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["kind"] == "melodi" and 0 < result["bits_per_token"] < 12


def test_lswt_options_reach_the_model_and_the_checkpoint(corpus, tmp_path, capsys):
    workdir = str(tmp_path / "lswt")
    options = [
        "--rotary", "reversed", "--rotary-base", "500000", "--no-position-bias",
        "--num-registers", "2", "--activation", "swiglu", "--contrastive-margin", "0.5",
        "--optimizer", "sophia",
    ]  # fmt: skip
    main(train_args(corpus, workdir, 2, *options))
    model, progress = load_checkpoint(workdir)
    attention = model.blocks[0].attention
    assert (attention.rotary, attention.rotary_base, attention.num_registers) == (
        "reversed",
        500000.0,
        2,
    )
    assert not attention.use_position_bias
    assert model.blocks[0].ffn.gated and model.contrastive_margin == 0.5
    assert type(model.optimizer).__name__ == "Sophia"
    assert progress["run_config"]["optimizer"] == "sophia"
    with pytest.raises(SystemExit):
        main(
            train_args(corpus, str(tmp_path / "m"), 1, "--model", "melodi", "--rotary", "standard")
        )
    assert "melodi kind does not take ['rotary']" in capsys.readouterr().err


def test_demo_runs_end_to_end_with_every_train_option_at_its_default(corpus, tmp_path, capsys):
    # The demo builds its train runs itself; a train option it did not know
    # once broke `make demo`.
    args = ["demo", "--data", corpus, "--workdir", str(tmp_path / "demo"), "--steps", "2"]
    main([*args, "--eval-steps", "1", "--batch-size", "2", "--recall-iterations", "1"])
    out = capsys.readouterr().out
    assert "| local |" in out and "| xl |" in out and "Sample from the Transformer-XL" in out
    assert os.path.exists(tmp_path / "demo" / "loss.png")
    # The recall half: a row per distance for both models, the sample's answers, the figure.
    assert "| tokens back | xl | memorizing_512 |" in out and "| 1024 |" in out
    assert "right answers:" in out and "memorizing_512:" in out
    assert os.path.exists(tmp_path / "demo" / "recall" / "recall.png")


def test_check_finite_stops_a_diverging_run_before_it_checkpoints_nan(corpus, tmp_path, capsys):
    workdir = str(tmp_path / "run")
    args = ["--learning-rate", "1e30", "--checkpoint-every", "1", "--check-finite"]
    with pytest.raises(SystemExit) as exit_info:
        main(train_args(corpus, workdir, 6, *args))
    assert exit_info.value.code == 1
    assert "FiniteCheck stopped training after step" in capsys.readouterr().err
    model, _ = load_checkpoint(workdir)
    if model is not None:  # the steps before the NaN; never a non-finite checkpoint
        for weight in model.weights:
            assert np.all(np.isfinite(keras.ops.convert_to_numpy(weight))), weight.path


def test_resume_of_a_run_saved_before_an_option_existed_takes_its_default():
    from keras_memory.cli.run_config import differences

    saved = {"kind": "block_recurrent", "segment_length": 32, "data": "python-source"}
    asked = {**saved, "memory_dropout": 0.0}
    assert differences(saved, asked) == []
    assert differences(saved, {**asked, "memory_dropout": 0.5}) == [
        "--memory-dropout 0.5 (saved: 0.0)"
    ]
    assert differences(saved, {**saved, "segment_length": 64}) == [
        "--segment-length 64 (saved: 32)"
    ]


def generated(capsys, workdir, *flags):
    """The text `generate` streams for `--prompt alpha`, with `flags`."""
    capsys.readouterr()
    main(["generate", "--workdir", workdir, "--prompt", "alpha", *flags])
    out = capsys.readouterr().out
    assert out.endswith("\n")
    return out[:-1]


def test_greedy_generation_is_deterministic_and_ends_at_its_first_stop_token(
    generation_run, capsys
):
    greedy = ["--sampler", "greedy", "--max-new-tokens", "24"]
    text = generated(capsys, generation_run, *greedy)
    assert text.startswith("alpha") and generated(capsys, generation_run, *greedy) == text
    continuation = text[len("alpha") :]
    # Stop at the one-byte character first seen latest; '\n' is typed as an escape.
    candidates = [c for c in continuation if ord(c) < 128]
    assert candidates, continuation
    stop = max(candidates, key=continuation.index)
    typed = stop.replace("\\", "\\\\").replace("\n", "\\n")
    unseen = next(c for c in "~#@%" if c not in continuation)  # `--stop` is repeatable
    stopped = generated(capsys, generation_run, *greedy, "--stop", typed, "--stop", unseen)
    assert stopped == "alpha" + continuation[: continuation.index(stop) + 1]


def test_a_prompt_file_is_one_batch_and_one_json_line_per_prompt(generation_run, tmp_path, capsys):
    prompts = ["alpha", "beta gamma delta alpha beta", "x"]
    path = tmp_path / "prompts.txt"
    path.write_text("alpha\n\nbeta gamma delta alpha beta\n   \nx\n")
    capsys.readouterr()
    main(
        ["generate", "--workdir", generation_run, "--prompt-file", str(path)]
        + ["--max-new-tokens", "12", "--sampler", "top_p", "--top-p", "0.95", "--seed", "3"]
    )
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert [record["prompt"] for record in records] == prompts
    assert all(record["text"].startswith(record["prompt"]) for record in records)
    count = int(captured.err.split()[0])
    assert 1 <= count <= 3 * 12 and captured.err.startswith(f"{count} tokens in ")


def test_streamed_text_holds_back_a_partial_utf8_character(capsys):
    from keras_memory.cli.generate import Continuation, StreamPrinter
    from keras_memory.data import ByteTokenizer

    tokenizer = ByteTokenizer()
    printer = StreamPrinter(Continuation(tokenizer, tokenizer.encode("a")))
    pieces = []
    for token in [*tokenizer.encode("bé!"), -1]:
        printer(np.array([token, -1]))
        pieces.append(capsys.readouterr().out)
    printer.finish("bé!")
    assert pieces == ["b", "", "é", "!", ""] and capsys.readouterr().out == "\n"
