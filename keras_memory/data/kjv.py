"""The King James Bible, book by book: long English documents that need no download.

Debian's `bible-kjv` package (the `bible` program and its compressed text)
installs from the distribution's own archive, so the corpus is at hand on an
offline machine that reaches only package registries, where PG-19 is not.
"""

import os
import re
import shutil
import subprocess

from keras_memory.data.corpora import Corpus, split_names

# Everything, first verse to last, in the program's own reference syntax.
WHOLE_BIBLE = "Genesis 1:1-Revelation 22:21"
# A chapter heading as the program prints it: "Genesis 1", "1 Samuel 12";
# every other printed line is an indented, numbered verse.
_HEADING = re.compile(r"^(\S.*) (\d+)$")
# Wide enough that no verse is wrapped onto a second line.
_LINE_WIDTH = "-l100000"
INSTALL_HINT = "apt-get install bible-kjv (Debian/Ubuntu; the text is public domain)"


def kjv_corpus(split="train", validation_fraction=0.1, program=None, data_path=None):
    """The 66 books of the King James Bible, each a document.

    Books run from 2 KB (Obadiah, 2 John) to 240 KB (Psalms): 4.3 MB of
    English prose with long-range structure (names, genealogies, refrains,
    repeated laws), public domain. Each book is its chapters in order, one
    heading line per chapter (`"Chapter 3"`) and one line per verse. The
    train/validation split is a hash of the book's name, as for the other
    corpora.

    Args:
        split: None, `"train"` or `"validation"`. None keeps every book.
        validation_fraction: float. Share of books in validation (at least one).
        program: str or None. Path of the `bible` program; default: found on
            `PATH` (Debian's `bible-kjv` package installs `/usr/bin/bible`).
        data_path: str or None. Folder holding `bible.data` when it is not
            where the program looks by default (`/usr/lib`).

    Returns:
        A `Corpus` whose names are the books' names (`"Genesis"`, ...).

    Raises:
        ValueError: the `bible` program is missing or printed no books.

    Example:
    ```python
    books = kjv_corpus("validation")
    stream = SegmentStream(books.tokenize(), batch_size=8, segment_length=128)
    ```
    """
    program = program or shutil.which("bible")
    if not program or not os.path.isfile(program):
        raise ValueError(f"kjv_corpus needs the `bible` program: {INSTALL_HINT}.")
    command = [program, _LINE_WIDTH] + (["-p", data_path] if data_path else []) + [WHOLE_BIBLE]
    try:
        printed = subprocess.run(command, capture_output=True, check=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as error:
        raise ValueError(f"`{' '.join(command)}` failed ({error}); {INSTALL_HINT}.") from None
    names, texts = parse_books(printed.stdout.decode("utf-8", errors="replace"))
    if not names:
        raise ValueError(f"`{' '.join(command)}` printed no books; {INSTALL_HINT}.")
    chosen = split_names(names, split, validation_fraction)
    return Corpus([names[i] for i in chosen], [texts[i] for i in chosen], skipped={})


def parse_books(text):
    """Splits the `bible` program's output into `(book names, book texts)`."""
    names, books = [], []
    for line in text.splitlines():
        heading = _HEADING.match(line)
        if heading:
            book, chapter = heading.groups()
            if not names or names[-1] != book:
                names.append(book)
                books.append([])
            books[-1].append(f"Chapter {chapter}")
        elif line.strip() and books:
            books[-1].append(line.strip())
    return names, ["\n".join(lines) + "\n" for lines in books]
