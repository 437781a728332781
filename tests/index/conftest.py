"""Fixtures for the engine's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from trafilatura.deduplication import LRU_TEST


@pytest.fixture(autouse=True)
def _fresh_extraction_cache() -> Iterator[None]:
    """Start every test with trafilatura's process-wide duplicate cache empty.

    index/sources.py extracts with ``deduplicate=True``, which makes trafilatura drop paragraphs it has seen
    a few times before in the same process; without this, tests would depend on which ones ran first.
    ``test_the_same_page_extracts_the_same_text_every_time`` covers that bug itself.
    """
    LRU_TEST.clear()
    yield
