import pytest
import tensorflow_datasets as tfds

from keras_memory.data import SegmentStream
from keras_memory.data.pg19 import pg19_corpus


def test_pg19_reads_books_through_tfds():
    with tfds.testing.mock_data(num_examples=4):
        books = pg19_corpus("validation")
        first_two = pg19_corpus("train", max_documents=2)
    assert len(books) == 4 and len(first_two) == 2
    assert all(isinstance(text, str) and text for text in books.texts)
    assert all(": " in name for name in books.names)
    stream = SegmentStream(books.tokenize(), batch_size=2, segment_length=64)
    assert len(stream) >= 1


def test_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="PG-19 is not prepared"):
        pg19_corpus("validation", data_dir=str(tmp_path))
