"""``/ask`` and the mention flow, end to end through the real discord.py client and the fake Discord."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot import render
from bot.client import NewsQuoteBot
from index import Engine
from index.models import Answer
from tests.bot.conftest import StartBot
from tests.bot.support import (
    BRIDGE,
    BRIDGE_ANSWER,
    BRIDGE_QUESTION,
    BRIDGE_TITLE,
    BRIDGE_URL,
    ORCHARD,
    ORCHARD_TITLE,
    World,
    assert_fits,
    callback,
    channel_posts,
    followups,
    make_excerpt,
    pings_nobody,
    quoted,
    told_privately,
    wait_for_posts,
)
from tests.fakes.discord_server import EPHEMERAL, FakeDiscord


@pytest.fixture
def bridge(engine: Engine, world: World) -> None:
    engine.add_text(BRIDGE, world.collection_a, title=BRIDGE_TITLE, url=BRIDGE_URL)


def mention(fake: FakeDiscord, text: str) -> str:
    return f"<@{fake.bot_user['id']}> {text}"


@pytest.mark.usefixtures("bridge")
async def test_ask_defers_then_follows_up_with_the_quoted_answer(fake: FakeDiscord, bot: NewsQuoteBot) -> None:
    interaction = await fake.send_interaction("ask", {"question": BRIDGE_QUESTION})
    [reply] = await followups(fake, interaction)

    assert interaction.response_type == 5  # deferred: "the bot is thinking"
    assert not interaction.callbacks[0]["data"].get("flags", 0) & EPHEMERAL
    first = reply.json["embeds"][0]
    assert (first["title"], first["url"]) == (BRIDGE_TITLE, BRIDGE_URL)
    text, bold = quoted(first["description"])
    assert bold == [BRIDGE_ANSWER]
    assert text in BRIDGE
    assert "% in" in first["footer"]["text"] or "start" in first["footer"]["text"]
    assert not reply.json.get("content")
    assert pings_nobody(reply.json)


@pytest.mark.usefixtures("bridge")
async def test_private_ask_is_answered_ephemerally(fake: FakeDiscord, bot: NewsQuoteBot) -> None:
    interaction = await fake.send_interaction("ask", {"question": BRIDGE_QUESTION, "private": True})
    [reply] = await followups(fake, interaction)

    assert interaction.callbacks[0]["data"]["flags"] & EPHEMERAL
    assert reply.json["flags"] & EPHEMERAL


@pytest.mark.usefixtures("bridge")
async def test_unanswerable_question_says_so_and_shows_weak_matches(fake: FakeDiscord, bot: NewsQuoteBot) -> None:
    interaction = await fake.send_interaction("ask", {"question": "What is the capital of Mongolia?"})
    [reply] = await followups(fake, interaction)

    assert "nothing in the indexed articles answers this" in reply.json["content"].lower()
    assert reply.json["embeds"]
    assert all("weak match" in e["footer"]["text"] for e in reply.json["embeds"])


async def test_question_in_one_server_never_quotes_another_servers_article(
    world: World, engine: Engine, bot: NewsQuoteBot
) -> None:
    engine.add_text(BRIDGE, world.collection_a, title=BRIDGE_TITLE)
    engine.add_text(ORCHARD, world.collection_b, title=ORCHARD_TITLE)

    interaction = await world.fake.send_interaction("ask", {"question": BRIDGE_QUESTION}, channel_id=world.channel_b)
    [reply] = await followups(world.fake, interaction)

    assert {e.get("title") for e in reply.json["embeds"]} == {ORCHARD_TITLE}
    assert "bridge" not in str(reply.json).lower()


@pytest.mark.usefixtures("bridge")
async def test_mention_is_answered_in_a_reply(fake: FakeDiscord, world: World, bot: NewsQuoteBot) -> None:
    question = await fake.send_message_create(mention(fake, BRIDGE_QUESTION))
    [reply] = await wait_for_posts(fake, world.channel_a)

    assert str(reply.json["message_reference"]["message_id"]) == question["id"]
    assert quoted(reply.json["embeds"][0]["description"])[1] == [BRIDGE_ANSWER]
    assert pings_nobody(reply.json)


@pytest.mark.usefixtures("bridge")
async def test_reply_to_an_answer_is_answered_too(fake: FakeDiscord, world: World, bot: NewsQuoteBot) -> None:
    await fake.send_message_create(mention(fake, BRIDGE_QUESTION))
    await wait_for_posts(fake, world.channel_a)
    answer_id = next(m["id"] for m in fake.messages.values() if m.get("embeds") and m["author"]["bot"])

    follow_up = await fake.send_message_create("How much did the construction cost?", reply_to=answer_id)
    [_, reply] = await wait_for_posts(fake, world.channel_a, 2)

    assert str(reply.json["message_reference"]["message_id"]) == follow_up["id"]
    assert "forty million" in reply.json["embeds"][0]["description"]


@pytest.mark.usefixtures("bridge")
@pytest.mark.parametrize("message_content", [False, True], ids=["without-intent", "with-intent"])
async def test_silent_reply_to_an_answer_needs_the_message_content_intent(
    fake: FakeDiscord, world: World, start_bot: StartBot, message_content: bool
) -> None:
    await start_bot(message_content=message_content)
    await fake.send_message_create(mention(fake, BRIDGE_QUESTION))
    await wait_for_posts(fake, world.channel_a)
    answer_id = next(m["id"] for m in fake.messages.values() if m.get("embeds") and m["author"]["bot"])

    silent = await fake.send_message_create("How much did it cost?", reply_to=answer_id, mention_reply=False)
    marker = await fake.send_message_create(mention(fake, "Who announced it?"))  # answered: both were read
    posts = await wait_for_posts(fake, world.channel_a, 3 if message_content else 2)
    await asyncio.sleep(0.05)

    replied_to = {str(p.json["message_reference"]["message_id"]) for p in channel_posts(fake, world.channel_a)[1:]}
    assert replied_to == ({silent["id"], marker["id"]} if message_content else {marker["id"]})
    assert len(posts) == len(channel_posts(fake, world.channel_a))


@pytest.mark.usefixtures("bridge")
async def test_bare_mention_gets_a_hint(fake: FakeDiscord, world: World, bot: NewsQuoteBot) -> None:
    await fake.send_message_create(mention(fake, ""))
    [reply] = await wait_for_posts(fake, world.channel_a)

    assert reply.json["content"] == render.EMPTY_MENTION


@pytest.mark.usefixtures("bridge")
async def test_message_not_addressed_to_the_bot_is_ignored(fake: FakeDiscord, world: World, bot: NewsQuoteBot) -> None:
    await fake.send_message_create(BRIDGE_QUESTION)
    await fake.send_message_create(mention(fake, BRIDGE_QUESTION))
    await wait_for_posts(fake, world.channel_a)

    assert len(channel_posts(fake, world.channel_a)) == 1


async def test_direct_message_gets_a_clear_refusal(fake: FakeDiscord, bot: NewsQuoteBot) -> None:
    message = await fake.send_direct_message(BRIDGE_QUESTION)
    [reply] = await wait_for_posts(fake, message["channel_id"])

    assert reply.json["content"] == render.DIRECT_MESSAGE_REFUSAL


async def test_article_mentioning_everyone_pings_nobody(
    fake: FakeDiscord, world: World, engine: Engine, bot: NewsQuoteBot
) -> None:
    alice = world.alice["id"]
    text = f"@everyone listen: the harbour bridge will open in May, said <@{alice}> and @here on Tuesday. " + ORCHARD
    engine.add_text(text, world.collection_a, title="@everyone <@&1> bridge")

    interaction = await fake.send_interaction("ask", {"question": BRIDGE_QUESTION})
    [slash] = await followups(fake, interaction)
    await fake.send_message_create(mention(fake, BRIDGE_QUESTION))
    [reply] = await wait_for_posts(fake, world.channel_a)

    for body in (slash.json, reply.json):
        assert pings_nobody(body)
        quote = next(e["description"] for e in body["embeds"] if "bridge" in e["description"])
        assert "\\@everyone" in quote
        assert f"\\<@{alice}>" in quote
        assert "@everyone listen" in quoted(quote)[0]


async def test_answer_longer_than_discords_limits_is_split_across_messages(
    fake: FakeDiscord, bot: NewsQuoteBot, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    sentence = "The committee heard that the *budget* would grow again next year. "
    long_text = sentence * 150  # about 10,000 characters, well past 4096 per embed and 6000 per message
    excerpts = [make_excerpt(long_text, focus=(0, len(sentence)), article_id=n) for n in range(1, 4)]
    monkeypatch.setattr(engine, "ask", lambda question, collection, k=3: Answer(question, collection, True, excerpts))

    interaction = await fake.send_interaction("ask", {"question": "What about the budget?"})
    expected = len(render.answer_replies(Answer("q", "c", True, excerpts)))
    replies = await followups(fake, interaction, expected)

    assert expected >= 3
    for reply in replies:
        assert_fits(reply.json)
        assert pings_nobody(reply.json)
    descriptions = [e["description"] for r in replies for e in r.json["embeds"]]
    assert all(quoted(d)[0].endswith("next year.") for d in descriptions)  # cut at sentence ends
    assert sum(quoted(d)[0].count("budget") for d in descriptions) == 3 * 150


async def test_unexpected_error_gets_a_polite_reply_and_the_bot_keeps_serving(
    fake: FakeDiscord,
    bot: NewsQuoteBot,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*_args: object, **_kwargs: object) -> Answer:
        raise RuntimeError("the index caught fire")

    monkeypatch.setattr(engine, "ask", broken)
    failed = await fake.send_interaction("ask", {"question": BRIDGE_QUESTION})
    told = await told_privately(fake, failed)
    later = await fake.send_interaction("stats")
    stats = await callback(fake, later)

    assert told == render.GENERIC_ERROR
    assert "fire" not in str(fake.requests)
    assert failed.original is None  # the public "thinking…" placeholder was removed
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors
    assert errors[0].exc_info is not None
    assert "fire" in str(errors[0].exc_info[1])
    assert stats.json["data"]["embeds"][0]["title"] == "Index statistics"


async def test_users_mistake_gets_a_short_private_message_not_a_logged_error(
    fake: FakeDiscord, bot: NewsQuoteBot, caplog: pytest.LogCaptureFixture
) -> None:
    interaction = await fake.send_interaction("ask", {"question": BRIDGE_QUESTION})  # nothing added yet
    told = await told_privately(fake, interaction)

    assert told.startswith("No articles")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.usefixtures("bridge")
async def test_asking_again_too_soon_says_when_to_try_again(fake: FakeDiscord, start_bot: StartBot) -> None:
    await start_bot(ask_cooldown_seconds=30)

    first = await fake.send_interaction("ask", {"question": BRIDGE_QUESTION})
    await followups(fake, first)
    second = await fake.send_interaction("ask", {"question": BRIDGE_QUESTION})
    told = await told_privately(fake, second)

    assert told in (render.cooldown(30), render.cooldown(29))
    assert second.response_type == 4
