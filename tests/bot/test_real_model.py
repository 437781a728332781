"""The whole path with the real packaged model: a file uploaded through Discord, then a question answered from it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from index import Engine, Settings
from index.embedding import SentenceTransformerEmbedder
from tests.bot.conftest import StartBot
from tests.bot.support import final_edit, followups, quoted
from tests.fakes.discord_server import FakeDiscord
from tests.index.articles import PHONE_CALL, PHONE_CALL_TITLE

NAMING_SENTENCE = "Deputy Transport Minister Rosalind Achterberg told the committee on Tuesday"


@pytest.fixture
def real_model_engine(settings: Settings, real_embedder: SentenceTransformerEmbedder) -> Iterator[Engine]:
    engine = Engine(settings, embedder=real_embedder)
    yield engine
    engine.close()


async def test_an_uploaded_article_answers_who_claimed_the_call_happened(
    fake: FakeDiscord, start_bot: StartBot, real_model_engine: Engine
) -> None:
    await start_bot(real_model_engine)
    upload = fake.add_attachment("phone-call.txt", PHONE_CALL.encode(), "text/plain")
    added = await fake.send_interaction("add file", {"attachment": upload})
    await final_edit(fake, added, PHONE_CALL_TITLE)

    asked = await fake.send_interaction("ask", {"question": "who claimed the call happened?"})
    [reply] = await followups(fake, asked)

    first = reply.json["embeds"][0]
    assert first["title"] == PHONE_CALL_TITLE
    text, bold = quoted(first["description"])
    assert NAMING_SENTENCE in text
    assert text in PHONE_CALL  # verbatim, once Discord's escapes are read
    assert bold, "the answering sentence is highlighted"
