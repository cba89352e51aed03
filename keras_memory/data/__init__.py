"""Long documents in: tokenizers, corpora and in-order segment streams."""

from keras_memory.data.byte_tokenizer import BOS_ID, EOS_ID, PAD_ID, ByteTokenizer
from keras_memory.data.corpora import Corpus, python_source_corpus, text_files_corpus
from keras_memory.data.pg19 import pg19_corpus
from keras_memory.data.step_window import StepWindow
from keras_memory.data.streaming import SegmentStream, document_segments

__all__ = [
    "BOS_ID",
    "EOS_ID",
    "PAD_ID",
    "ByteTokenizer",
    "Corpus",
    "SegmentStream",
    "StepWindow",
    "document_segments",
    "pg19_corpus",
    "python_source_corpus",
    "text_files_corpus",
]
