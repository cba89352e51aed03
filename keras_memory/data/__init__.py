"""Long documents in: tokenizers, corpora and in-order segment streams."""

from keras_memory.data.corpora import Corpus, python_source_corpus, text_files_corpus
from keras_memory.data.kjv import kjv_corpus
from keras_memory.data.pg19 import pg19_corpus
from keras_memory.data.prose_facts import prose_fact_documents
from keras_memory.data.python_docs import python_docs_corpus
from keras_memory.data.step_window import StepWindow
from keras_memory.data.streaming import SegmentStream, document_segments
from keras_memory.data.synthetic import (
    SyntheticDocument,
    associative_recall_documents,
    passkey_documents,
)
from keras_memory.data.tokenizers import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    BytePairTokenizer,
    ByteTokenizer,
    HubTokenizer,
    SentencePieceTokenizer,
    load_tokenizer,
    make_tokenizer,
    save_tokenizer,
    special_token_ids,
    tokenize_in_tf_data,
    train_bpe,
    train_sentencepiece,
)

__all__ = [
    "BOS_ID",
    "EOS_ID",
    "PAD_ID",
    "BytePairTokenizer",
    "ByteTokenizer",
    "Corpus",
    "HubTokenizer",
    "SegmentStream",
    "SentencePieceTokenizer",
    "StepWindow",
    "SyntheticDocument",
    "associative_recall_documents",
    "document_segments",
    "kjv_corpus",
    "load_tokenizer",
    "make_tokenizer",
    "passkey_documents",
    "pg19_corpus",
    "prose_fact_documents",
    "python_docs_corpus",
    "python_source_corpus",
    "save_tokenizer",
    "special_token_ids",
    "text_files_corpus",
    "tokenize_in_tf_data",
    "train_bpe",
    "train_sentencepiece",
]
