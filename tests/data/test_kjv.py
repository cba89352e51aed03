import os
import stat

import pytest

from keras_memory.data.kjv import kjv_corpus, parse_books

# What Debian's `bible` program prints (chapter headings, numbered verses).
PRINTED = """
Genesis 1

  1 In the beginning God created the heaven and the earth.
  2 And the earth was without form, and void.

Genesis 2

  1 Thus the heavens and the earth were finished.

1 Samuel 1

  1 Now there was a certain man of Ramathaimzophim, of mount Ephraim.

Song of Solomon 3

  1 By night on my bed I sought him whom my soul loveth.
"""


def test_parse_books_gives_one_document_per_book_with_its_chapters():
    names, texts = parse_books(PRINTED)
    assert names == ["Genesis", "1 Samuel", "Song of Solomon"]
    assert texts[0] == (
        "Chapter 1\n1 In the beginning God created the heaven and the earth.\n"
        "2 And the earth was without form, and void.\nChapter 2\n"
        "1 Thus the heavens and the earth were finished.\n"
    )
    assert texts[2].startswith("Chapter 3\n1 By night")


def fake_bible(tmp_path):
    """A stand-in for the `bible` program that checks its arguments."""
    path = tmp_path / "bible"
    path.write_text(f'#!/bin/sh\n[ "$1" = "-l100000" ] || exit 3\ncat {tmp_path / "printed.txt"}\n')
    (tmp_path / "printed.txt").write_text(PRINTED)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_kjv_corpus_runs_the_program_and_splits_by_book(tmp_path):
    program = fake_bible(tmp_path)
    every = kjv_corpus(None, program=program)
    assert every.names == ["Genesis", "1 Samuel", "Song of Solomon"]
    train = kjv_corpus("train", program=program)
    validation = kjv_corpus("validation", program=program)
    assert sorted(train.names + validation.names) == sorted(every.names)
    assert len(validation) >= 1 and not set(train.names) & set(validation.names)


def test_kjv_corpus_without_the_program_names_the_package(tmp_path):
    with pytest.raises(ValueError, match="apt-get install bible-kjv"):
        kjv_corpus(program=os.path.join(tmp_path, "missing"))
    silent = tmp_path / "silent"
    silent.write_text("#!/bin/sh\nexit 0\n")
    silent.chmod(0o755)
    with pytest.raises(ValueError, match="printed no books"):
        kjv_corpus(program=str(silent))
