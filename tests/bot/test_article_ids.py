"""``/remove`` with article numbers no article can have: a private one-line answer, never a crash."""

from __future__ import annotations

import logging

import pytest

from index import Engine
from tests.bot.support import BRIDGE, BRIDGE_TITLE, World, told_privately


@pytest.mark.parametrize(
    ("typed", "told"),
    [
        ("1180591620717411303424", "There is no article #1180591620717411303424 here"),
        ("#9223372036854775808", "There is no article #9223372036854775808 here"),
        ("9" * 5000, "There is no article #9999"),
        ("²", "No single article matches '²'"),
    ],
    ids=["huge", "just-past-sqlite", "thousands-of-digits", "superscript-two"],
)
@pytest.mark.usefixtures("bot")
async def test_remove_of_an_impossible_number_says_there_is_no_such_article(
    world: World, engine: Engine, caplog: pytest.LogCaptureFixture, typed: str, told: str
) -> None:
    article = engine.add_text(BRIDGE, world.collection_a, title=BRIDGE_TITLE, added_by=world.alice["id"]).article

    interaction = await world.fake.send_interaction("remove", {"article": typed})
    text = await told_privately(world.fake, interaction)

    assert text.startswith(told)
    assert len(text) < 200
    assert engine.articles(world.collection_a) == [article]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
