"""Counts in words, the same in the command line and the bot: "1 chunk", "2 chunks"."""

from __future__ import annotations


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``count`` and ``noun``, the noun in the plural unless the count is one, e.g. ``plural(3, "chunk")``."""
    return f"{count:,} {noun if count == 1 else many or noun + 's'}"
