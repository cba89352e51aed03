"""Long documents in: tokenizers, corpora and in-order segment streams."""

from keras_memory.data.byte_tokenizer import BOS_ID, EOS_ID, PAD_ID, ByteTokenizer
from keras_memory.data.streaming import SegmentStream, document_segments

__all__ = [
    "BOS_ID",
    "EOS_ID",
    "PAD_ID",
    "ByteTokenizer",
    "SegmentStream",
    "document_segments",
]
