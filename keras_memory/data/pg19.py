"""PG-19 (books from Project Gutenberg) through tensorflow-datasets."""

from keras_memory.data.corpora import Corpus


def pg19_corpus(split="train", data_dir=None, max_documents=None, download=False):
    """Books of the PG-19 benchmark, each a document, from tensorflow-datasets.

    The `pg19` builder reads the books from DeepMind's public bucket when it
    prepares the dataset; prepare it once where that is reachable
    (`tfds build pg19 --data_dir DIR`, about 11 GB) and point `data_dir` at
    it, or pass `download=True`.

    Args:
        split: str. `"train"`, `"validation"` or `"test"` (or any tfds split
            expression such as `"train[:1%]"`).
        data_dir: str or None. tfds data directory (default: tfds's own).
        max_documents: int or None. Read only the first N books.
        download: bool. Let tfds prepare the dataset if it is missing.

    Returns:
        A `Corpus` whose names are `"<book_id>: <title>"`.

    Raises:
        ValueError: the dataset is not prepared in `data_dir` and `download`
            is False.

    Example:
    ```python
    books = pg19_corpus("validation", data_dir="~/tensorflow_datasets")
    stream = SegmentStream(books.tokenize(), batch_size=8, segment_length=4096)
    ```

    References:
        - [Rae et al., 2020](https://arxiv.org/abs/1911.05507)
    """
    import tensorflow_datasets as tfds

    try:
        dataset = tfds.load("pg19", split=split, data_dir=data_dir, download=download)
    except (AssertionError, tfds.core.registered.DatasetNotFoundError, OSError) as error:
        raise ValueError(
            f"PG-19 is not prepared in data_dir={data_dir!r}: run `tfds build pg19 "
            "--data_dir DIR` where DeepMind's bucket is reachable, then pass "
            f"data_dir=DIR (tfds said: {str(error).splitlines()[0][:200]})"
        ) from None
    if max_documents is not None:
        dataset = dataset.take(max_documents)
    names, texts = [], []
    for example in tfds.as_numpy(dataset):
        names.append(f"{example['book_id']}: {_text(example['book_title'])}")
        texts.append(_text(example["book_text"]))
    return Corpus(names, texts, skipped={})


def _text(value):
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
