"""Texts that every tokenizer kind must round-trip, shared by the tokenizer tests.

Exact round trips (`decode(encode(text)) == text`), checked on code
(indentation, tabs, CRLF, trailing spaces, blank lines) and prose (accents,
punctuation, emoji, CJK): bytes always; sentencepiece except for "▁"
(U+2581, decoded as a space); bpe except for "६" (U+096C, deleted by
keras-hub's TensorFlow pre-tokenizer).
"""

CODE = (
    "import os\n\n\nclass Point:\n"
    '    """A point."""\n\n'
    "    def __init__(self, x=0, y=0):\n"
    "        self.x, self.y = x, y  \n"
    "\tif x:\r\n"
    "\t\treturn {'x': x, \"y\": [y ** 2 for _ in range(3)]}\n"
    "        # trailing spaces and blank lines   \n"
    "\n   \n"
    "x = lambda a, *b, **c: a@b  # ~`|\\^\n"
)
PROSE = (
    "  It was the best of times, it was the worst of times -- said Dickens; "
    "naïve café façade — «quoted» ‘text’ … 42 3.14159\n\n"
    "Second paragraph: emoji 😀🚀, CJK 中文字, Greek αβγ, and  double  spaces. "
)
SPECIAL_LOOKING = "<s> </s> <pad> <unk> ⁇ <0x41>"
# Keys of the `tokenizers` fixture (conftest.py).
KINDS = ("bytes", "sentencepiece_unigram", "sentencepiece_bpe", "bpe")
