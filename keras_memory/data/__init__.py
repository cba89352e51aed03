"""Long documents in: tokenizers, corpora and in-order segment streams."""

from keras_memory.data.byte_tokenizer import BOS_ID, EOS_ID, PAD_ID, ByteTokenizer
from keras_memory.data.corpora import Corpus, python_source_corpus, text_files_corpus
from keras_memory.data.pg19 import pg19_corpus
from keras_memory.data.step_window import StepWindow
from keras_memory.data.streaming import SegmentStream, document_segments
from keras_memory.data.synthetic import (
    SyntheticDocument,
    associative_recall_documents,
    passkey_documents,
)

__all__ = [
    "BOS_ID",
    "EOS_ID",
    "PAD_ID",
    "ByteTokenizer",
    "Corpus",
    "SegmentStream",
    "StepWindow",
    "SyntheticDocument",
    "associative_recall_documents",
    "document_segments",
    "passkey_documents",
    "pg19_corpus",
    "python_source_corpus",
    "text_files_corpus",
]
