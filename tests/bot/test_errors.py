"""What members are told when something breaks, and what the log keeps."""

from __future__ import annotations

import pytest

from bot.client import DAMAGED, report_error
from index.errors import DatabaseDamagedError


def test_database_damage_is_logged_in_full_and_told_to_members_without_the_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    error = DatabaseDamagedError("/srv/bot/data/newsquote.db", "row 3 missing from index chunks_by_article")

    told = report_error(error, "/ask")

    assert told == DAMAGED
    assert "/srv/bot" not in told
    assert "/srv/bot/data/newsquote.db" in caplog.text
