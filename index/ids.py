"""Article numbers as people type them (``12``, ``#12``), checked before they reach SQLite."""

from __future__ import annotations

import re

from index.errors import ArticleNotFoundError

MAX_ARTICLE_ID = 2**63 - 1  # SQLite's largest INTEGER PRIMARY KEY
_ASCII_NUMBER = re.compile(r"#?([0-9]+)")  # not str.isdigit: it accepts "²" and other digits int() refuses
_SHOWN_CHARS = 24


def looks_like_id(text: str) -> bool:
    """Return whether ``text`` is written as an article number (ASCII digits, optionally after ``#``)."""
    return _ASCII_NUMBER.fullmatch(text.strip()) is not None


def parse_article_id(text: str, collection: str = "default") -> int:
    """Read an article number; anything that cannot name a stored article raises ``ArticleNotFoundError``."""
    match = _ASCII_NUMBER.fullmatch(text.strip())
    digits = match.group(1).lstrip("0") if match else ""
    # Checking the length first keeps int() away from Python's limit on long digit strings.
    if digits and len(digits) <= len(str(MAX_ARTICLE_ID)) and int(digits) <= MAX_ARTICLE_ID:
        return int(digits)
    shown = text.strip().removeprefix("#")
    if len(shown) > _SHOWN_CHARS:
        shown = shown[: _SHOWN_CHARS - 1] + "…"
    raise ArticleNotFoundError(shown, collection)
