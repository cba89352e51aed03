"""Document collections: the embedded Python-source corpus and text folders."""

import glob
import os
import sysconfig
import zlib

from keras_memory.data.tokenizers.byte_tokenizer import ByteTokenizer


class Corpus:
    """Named documents read from files, with what was skipped.

    Attributes:
        names: list of str, one per document (its path).
        texts: list of str.
        skipped: dict of path -> reason for files that were not read
            (not UTF-8, unreadable, empty).
    """

    def __init__(self, names, texts, skipped):
        self.names = names
        self.texts = texts
        self.skipped = skipped

    def __len__(self):
        return len(self.texts)

    def num_bytes(self):
        return sum(len(t.encode("utf-8")) for t in self.texts)

    def tokenize(self, tokenizer=None):
        """Returns the documents as lists of int32 ids (bytes by default)."""
        tokenizer = tokenizer or ByteTokenizer()
        return [tokenizer.encode(text) for text in self.texts]


def _path_bucket(relative_path):
    # A hash of the path, not its position, decides the split, so adding or
    # removing files never moves another file across it.
    return zlib.crc32(relative_path.encode("utf-8")) % 10_000


def _in_split(relative_path, split, validation_fraction):
    is_validation = _path_bucket(relative_path) < validation_fraction * 10_000
    return is_validation == (split == "validation")


def split_names(names, split, validation_fraction):
    """Indices of the documents `names` in `split`, a stable split by name.

    A document's split depends on its name alone (a hash), so adding or
    removing documents never moves another across it; 2+ documents always
    give 1+ validation one, and a single document is in both splits.

    Args:
        names: list of str. The documents' names (e.g. relative paths).
        split: `"train"`, `"validation"` or None (every document).
        validation_fraction: float. Share of the documents in validation.

    Returns:
        A list of indices into `names`.
    """
    if split is None or len(names) == 1:
        return list(range(len(names)))  # A single document is both splits.
    if split not in ("train", "validation"):
        raise ValueError(f"`split` must be None, 'train' or 'validation'; got {split!r}.")
    validation = [
        i for i, name in enumerate(names) if _in_split(name, "validation", validation_fraction)
    ]
    if not validation:
        validation = [min(range(len(names)), key=lambda i: _path_bucket(names[i]))]
    if split == "validation":
        return validation
    return [i for i in range(len(names)) if i not in set(validation)]


def _read_files(paths, root):
    names, texts, skipped = [], [], {}
    for path in paths:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as error:
            skipped[path] = f"unreadable: {error.strerror}"
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            skipped[path] = "not UTF-8"
            continue
        if not text:
            skipped[path] = "empty"
            continue
        names.append(os.path.relpath(path, root))
        texts.append(text)
    return names, texts, skipped


def python_source_corpus(
    split="train", validation_fraction=0.05, max_documents=None, by_package=False
):
    """The embedded default corpus: the Python standard library's own `.py` files.

    Each file is a document, like the GitHub code set of the Memorizing
    Transformer paper. The train/validation split is a deterministic hash of
    each file's path relative to the library root, so it is the same on
    every machine with the same Python.

    With `by_package=True` every top-level package is one document, its
    files concatenated in path order (each file headed by a `# file: PATH`
    line), and a top-level module stays a document of its own: documents of
    100 KB to 1 MB where files are a median 7 KB, closer to the paper's
    whole-repository documents and long enough to fill a large memory. The
    split is then a hash of the package name.

    Args:
        split: str. `"train"` or `"validation"`.
        validation_fraction: float. Share of files (packages) in the
            validation split.
        max_documents: int or None. Keep only the first N documents (sorted
            by path) of the split, for quick runs.
        by_package: bool. One document per top-level package.

    Returns:
        A `Corpus`.
    """
    if split not in ("train", "validation"):
        raise ValueError(f"`split` must be 'train' or 'validation'; got {split!r}.")
    root = sysconfig.get_paths()["stdlib"]
    paths = sorted(
        p
        for p in glob.glob(os.path.join(root, "**", "*.py"), recursive=True)
        if "site-packages" not in p
        and _in_split(
            _document_name(os.path.relpath(p, root), by_package), split, validation_fraction
        )
    )
    names, texts, skipped = _read_files(paths, root)
    if by_package:
        names, texts = _join_packages(names, texts)
    if max_documents is not None:
        names, texts = names[:max_documents], texts[:max_documents]
    return Corpus(names, texts, skipped)


def _document_name(relative_path, by_package):
    """The document a file belongs to: itself, or its top-level package."""
    if not by_package:
        return relative_path
    parts = relative_path.split(os.sep)
    return parts[0] if len(parts) > 1 else relative_path


def _join_packages(names, texts):
    documents = {}
    for name, text in zip(names, texts):
        documents.setdefault(_document_name(name, True), []).append(f"# file: {name}\n{text}")
    return list(documents), ["\n".join(parts) for parts in documents.values()]


def text_files_corpus(path, pattern="**/*", split=None, validation_fraction=0.05):
    """Documents from a folder of text files, a single file, or a glob.

    Files that are not UTF-8 are skipped and listed in `Corpus.skipped`.

    Args:
        path: str. A directory (searched with `pattern`), a file, or a glob
            such as `"books/*.txt"`.
        pattern: str. Glob under a directory. Defaults to every file.
        split: None, `"train"` or `"validation"`. None keeps every file;
            otherwise a hash of each readable file's path puts about
            `validation_fraction` of them in validation (at least one when
            there are two or more; a single file is both splits).
        validation_fraction: float. Share of files in the validation split.

    Returns:
        A `Corpus`.

    Raises:
        ValueError: the path does not exist, or holds no readable text.
    """
    if os.path.isdir(path):
        root = path
        paths = sorted(
            p for p in glob.glob(os.path.join(path, pattern), recursive=True) if os.path.isfile(p)
        )
    elif os.path.isfile(path):
        root, paths = os.path.dirname(path) or ".", [path]
    else:
        paths = sorted(p for p in glob.glob(path, recursive=True) if os.path.isfile(p))
        root = os.path.dirname(path.split("*")[0]) or "."
        if not paths:
            raise ValueError(f"`path` {path!r} does not exist or matches no file.")
    if not paths:
        raise ValueError(f"`path` {path!r} holds no files.")
    names, texts, skipped = _read_files(paths, root)
    if not names:
        raise ValueError(
            f"`path` {path!r} holds no UTF-8 text: {len(skipped)} file(s) "
            "skipped (not UTF-8 or empty)."
        )
    chosen = split_names(names, split, validation_fraction)
    return Corpus([names[i] for i in chosen], [texts[i] for i in chosen], skipped)
