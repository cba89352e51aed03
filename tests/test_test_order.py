"""The suite's scheduling list names files that exist (a renamed file would drop out silently)."""

import os

from tests.conftest import LONGEST_FILES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_longest_file_exists_once():
    missing = [path for path in LONGEST_FILES if not os.path.isfile(os.path.join(ROOT, path))]
    assert not missing
    assert len(set(LONGEST_FILES)) == len(LONGEST_FILES)
