"""The Python reference manual's topics: English prose that every Python carries.

`pydoc_data.topics` is the text `help()` shows for the language's keywords
and topics (the reference manual's sections, about 465 KB in Python 3.11), so
it is at hand on any machine, offline, with nothing to install: the built-in
prose of the natural-text recall task.
"""

from keras_memory.data.corpora import Corpus, split_names


def python_docs_corpus(split="train", validation_fraction=0.1):
    """The reference manual's topics of this Python, each a document.

    Args:
        split: None, `"train"` or `"validation"`. None keeps every topic.
        validation_fraction: float. Share of topics in validation (at least
            one), a stable hash of the topic's name.

    Returns:
        A `Corpus` whose names are the topics' names (`"assignment"`, ...).

    Example:
    ```python
    topics = python_docs_corpus("validation")
    print(topics.names[0], len(topics.texts[0]))
    ```
    """
    from pydoc_data.topics import topics

    names = sorted(topics)
    chosen = split_names(names, split, validation_fraction)
    return Corpus([names[i] for i in chosen], [topics[names[i]] for i in chosen], skipped={})
