import os

import pytest

from keras_memory.data import python_source_corpus, text_files_corpus


def test_python_source_split_is_disjoint_and_deterministic():
    train = python_source_corpus("train", max_documents=200)
    validation = python_source_corpus("validation")
    assert len(train) == 200 and len(validation) > 10
    assert not set(train.names) & set(validation.names)
    assert python_source_corpus("validation").names == validation.names
    assert all(name.endswith(".py") for name in validation.names)


def test_text_folder_skips_and_counts_non_utf8(tmp_path):
    (tmp_path / "a.txt").write_text("hello world")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("second document")
    (tmp_path / "bad.bin").write_bytes(b"\xff\xfe\x00bad")
    corpus = text_files_corpus(str(tmp_path))
    assert sorted(corpus.names) == ["a.txt", os.path.join("sub", "b.txt")]
    assert list(corpus.skipped.values()) == ["not UTF-8"]
    assert text_files_corpus(str(tmp_path / "*.txt")).texts == ["hello world"]


def test_text_corpus_errors_name_the_path(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        text_files_corpus(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no files"):
        text_files_corpus(str(tmp_path / "empty"))
    (tmp_path / "binary").mkdir()
    (tmp_path / "binary" / "x").write_bytes(b"\xff\xff")
    with pytest.raises(ValueError, match="no UTF-8 text"):
        text_files_corpus(str(tmp_path / "binary"))
    with pytest.raises(ValueError, match="`split`"):
        python_source_corpus("test")


def test_text_folder_split_is_disjoint_and_complete(tmp_path):
    for i in range(30):
        (tmp_path / f"doc{i}.txt").write_text(f"document {i}")
    train = text_files_corpus(str(tmp_path), split="train")
    validation = text_files_corpus(str(tmp_path), split="validation")
    assert validation.names and not set(train.names) & set(validation.names)
    assert len(train) + len(validation) == 30
    single = tmp_path / "doc0.txt"
    assert text_files_corpus(str(single), split="validation").texts == ["document 0"]


def test_python_source_by_package_joins_each_package_and_splits_whole_packages():
    files = python_source_corpus("train").names + python_source_corpus("validation").names
    train = python_source_corpus("train", by_package=True)
    validation = python_source_corpus("validation", by_package=True)
    assert not set(train.names) & set(validation.names)
    assert "json" in train.names + validation.names  # a package is one document...
    joined = dict(zip(train.names + validation.names, train.texts + validation.texts))
    json_files = sorted(f for f in files if f.startswith("json" + os.sep))
    assert [
        line[len("# file: ") :]
        for line in joined["json"].splitlines()
        if line.startswith("# file: json")
    ] == json_files  # ...its files in path order
    assert "typing.py" in joined  # and a top-level module stays one
    # Every file is in exactly one document.
    headers = sum(text.count("# file: ") for text in joined.values())
    assert headers >= len(files)
