"""Answers' buttons (More, Open thread, 👍, 👎), follow-ups by reply and in threads, /ask on one article, votes in
/stats: end to end through the real discord.py client and the fake Discord."""

from __future__ import annotations

import asyncio

import pytest

from bot import render
from bot.client import NewsQuoteBot
from index import Engine
from tests.bot.conftest import StartBot
from tests.bot.support import (
    BRIDGE,
    BRIDGE_QUESTION,
    BRIDGE_TITLE,
    World,
    callback,
    followups,
    told_privately,
)
from tests.fakes.discord_server import EPHEMERAL, LOADING, FakeDiscord, Payload, make_thread

STADIUM_TITLE = "Rovers unveil riverside stadium"
STADIUM = (
    "The Rovers unveiled plans for a riverside stadium on Monday. "
    "Critics of the project say the stadium project would cost the city far more than the club promised. "
    "The club said building work would start next spring."
)
# The bridge story's critics: the answer a follow-up on the bridge should quote.
BRIDGE_CRITICS = "Critics said the project had been delayed by two years because of flooding."
CRITICS_QUESTION = "What did critics say about the project?"


@pytest.fixture
def stories(engine: Engine, world: World) -> dict[str, int]:
    bridge = engine.add_text(BRIDGE, world.collection_a, title=BRIDGE_TITLE).article.id
    stadium = engine.add_text(STADIUM, world.collection_a, title=STADIUM_TITLE).article.id
    return {"bridge": bridge, "stadium": stadium}


def buttons(message: Payload) -> dict[str, Payload]:
    """A message's buttons by label or emoji ("More", "Open thread", "👍", "👎")."""
    found = {}
    for row in message.get("components") or []:
        for button in row["components"]:
            found[(button.get("emoji") or {}).get("name") or button["label"]] = button
    return found


def bot_messages(fake: FakeDiscord, channel_id: str) -> list[Payload]:
    """What the bot posted in a channel, oldest first (ephemeral ones included, "thinking..." placeholders not)."""
    mine = [m for m in fake.messages.values() if m["author"]["id"] == fake.bot_user["id"] and not m["flags"] & LOADING]
    return sorted((m for m in mine if m["channel_id"] == channel_id), key=lambda m: int(m["id"]))


async def ask(fake: FakeDiscord, engine: Engine, question: str, **options: object) -> Payload:
    """Run /ask and return the answer's message as the fake holds it, once the bot has recorded where it is."""
    interaction = await fake.send_interaction("ask", {"question": question, **options})
    await followups(fake, interaction)
    message = interaction.followups[0]
    await recorded(fake, engine, message)
    return message


async def recorded(fake: FakeDiscord, engine: Engine, message: Payload) -> None:
    """Wait until the bot has noted the message an answer went out in (it learns its id only once it is sent)."""
    await fake.wait_until(lambda: engine.answer_for_message(message["id"]) is not None)


async def click(fake: FakeDiscord, message: Payload, button: str, user: Payload | None = None) -> Payload:
    """Press a button of a message; return the initial response's body once the bot answered the click."""
    custom_id = buttons(message)[button]["custom_id"]
    user_id = user["id"] if user else None
    interaction = await fake.send_interaction(custom_id=custom_id, message=message["id"], user_id=user_id)
    return (await callback(fake, interaction)).json


def vote_labels(message: Payload) -> tuple[str | None, str | None]:
    found = buttons(message)
    return found["\N{THUMBS UP SIGN}"].get("label"), found["\N{THUMBS DOWN SIGN}"].get("label")


def mention(fake: FakeDiscord, text: str) -> str:
    return f"<@{fake.bot_user['id']}> {text}"


# --- the buttons under an answer ---------------------------------------------------------------------


@pytest.mark.usefixtures("stories")
async def test_an_answer_has_more_thread_and_vote_buttons_naming_its_record(
    fake: FakeDiscord, engine: Engine, world: World, bot: NewsQuoteBot
) -> None:
    answer = await ask(fake, engine, BRIDGE_QUESTION)

    found = buttons(answer)
    assert set(found) == {"More", "Open thread", "\N{THUMBS UP SIGN}", "\N{THUMBS DOWN SIGN}"}
    answer_id = int(found["More"]["custom_id"].rsplit(":", 1)[1])
    assert found["\N{THUMBS UP SIGN}"]["custom_id"] == f"nq:vote:up:{answer_id}"
    record = engine.answer_for_message(answer["id"])
    assert record is not None
    assert (record.id, record.question, record.article_ids) == (answer_id, BRIDGE_QUESTION, [1])


@pytest.mark.usefixtures("stories")
async def test_a_private_answer_offers_no_thread(fake: FakeDiscord, engine: Engine, bot: NewsQuoteBot) -> None:
    answer = await ask(fake, engine, BRIDGE_QUESTION, private=True)

    assert answer["flags"] & EPHEMERAL
    assert set(buttons(answer)) == {"More", "\N{THUMBS UP SIGN}", "\N{THUMBS DOWN SIGN}"}


# --- votes ---------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("stories")
async def test_votes_are_one_per_person_changeable_and_counted_on_the_buttons(
    fake: FakeDiscord, engine: Engine, world: World, bot: NewsQuoteBot
) -> None:
    answer = await ask(fake, engine, BRIDGE_QUESTION)
    answer_id = engine.answer_for_message(answer["id"]).id  # type: ignore[union-attr]

    first = await click(fake, answer, "\N{THUMBS UP SIGN}", world.alice)
    assert first["type"] == 7  # the answer's own message is updated
    assert vote_labels(fake.messages[answer["id"]]) == ("1", None)
    await click(fake, answer, "\N{THUMBS UP SIGN}", world.alice)  # again: still one vote
    await click(fake, answer, "\N{THUMBS UP SIGN}", world.bob)
    assert vote_labels(fake.messages[answer["id"]]) == ("2", None)
    await click(fake, answer, "\N{THUMBS DOWN SIGN}", world.alice)  # changed her mind

    assert vote_labels(fake.messages[answer["id"]]) == ("1", "1")
    assert (engine.votes(answer_id).up, engine.votes(answer_id).down) == (1, 1)
    assert set(buttons(fake.messages[answer["id"]])) >= {"More", "Open thread"}  # the other buttons stay


@pytest.mark.usefixtures("stories")
async def test_buttons_keep_working_after_a_restart(
    fake: FakeDiscord, engine: Engine, world: World, start_bot: StartBot
) -> None:
    first = await start_bot()
    answer = await ask(fake, engine, BRIDGE_QUESTION)
    await first.close()

    await start_bot()
    await click(fake, answer, "\N{THUMBS UP SIGN}", world.carol)

    assert vote_labels(fake.messages[answer["id"]]) == ("1", None)


@pytest.mark.usefixtures("stories")
async def test_stats_show_the_share_of_upvotes(
    fake: FakeDiscord, engine: Engine, world: World, bot: NewsQuoteBot
) -> None:
    answer = await ask(fake, engine, BRIDGE_QUESTION)
    for user, button in ((world.alice, "\N{THUMBS UP SIGN}"), (world.bob, "\N{THUMBS UP SIGN}")):
        await click(fake, answer, button, user)
    await click(fake, answer, "\N{THUMBS DOWN SIGN}", world.carol)

    interaction = await fake.send_interaction("stats")
    body = (await callback(fake, interaction)).json
    fields = {f["name"]: f["value"] for f in body["data"]["embeds"][0]["fields"]}

    assert fields["Votes, last 30 days"] == "67% \N{THUMBS UP SIGN} (2 of 3 votes)"
    assert "Database size" not in fields


# --- More -------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("stories")
async def test_more_posts_the_next_passages_with_their_own_buttons(
    fake: FakeDiscord, engine: Engine, world: World, start_bot: StartBot
) -> None:
    await start_bot(excerpts=1)
    answer = await ask(fake, engine, BRIDGE_QUESTION)

    pressed = await click(fake, answer, "More")
    await fake.wait_until(lambda: len(bot_messages(fake, world.channel_a)) == 2)
    more = bot_messages(fake, world.channel_a)[1]
    await recorded(fake, engine, more)

    assert "More" not in buttons(pressed["data"])  # pressed once: the next batch carries its own
    assert more["content"] == render.more_lead(BRIDGE_QUESTION)
    assert more["embeds"][0]["description"] != answer["embeds"][0]["description"]
    record = engine.answer_for_message(more["id"])
    assert record is not None
    assert record.parent_id == engine.answer_for_message(answer["id"]).id  # type: ignore[union-attr]
    assert set(buttons(more)) == {"More", "Open thread", "\N{THUMBS UP SIGN}", "\N{THUMBS DOWN SIGN}"}


async def test_more_says_privately_when_everything_was_shown(
    fake: FakeDiscord, engine: Engine, world: World, bot: NewsQuoteBot
) -> None:
    engine.add_text("The lighthouse keeper retired on Monday after forty years.", world.collection_a, title="Keeper")
    answer = await ask(fake, engine, "When did the lighthouse keeper retire?")

    custom_id = buttons(answer)["More"]["custom_id"]
    interaction = await fake.send_interaction(custom_id=custom_id, message=answer["id"])

    assert await told_privately(fake, interaction) == render.NO_MORE
    assert "More" not in buttons(fake.messages[answer["id"]])


# --- follow-ups ---------------------------------------------------------------------------------------------


async def test_a_reply_to_an_answer_is_answered_from_its_articles_first(
    fake: FakeDiscord, engine: Engine, world: World, stories: dict[str, int], bot: NewsQuoteBot
) -> None:
    plain = engine.ask(CRITICS_QUESTION, world.collection_a)
    assert plain.results[0].article_id == stories["stadium"]  # asked afresh, the other story wins
    answer = await ask(fake, engine, BRIDGE_QUESTION)

    await fake.send_message_create(CRITICS_QUESTION, reply_to=answer["id"])
    await fake.wait_until(lambda: len(bot_messages(fake, world.channel_a)) == 2)
    reply = bot_messages(fake, world.channel_a)[1]

    assert BRIDGE_CRITICS in reply["embeds"][0]["description"]
    assert {e["title"] for e in reply["embeds"]} == {BRIDGE_TITLE}
    assert not reply["content"]
    await recorded(fake, engine, reply)  # a follow-up can be followed up in turn


async def test_a_follow_up_its_answer_cannot_answer_searches_every_article(
    fake: FakeDiscord, engine: Engine, world: World, stories: dict[str, int], bot: NewsQuoteBot
) -> None:
    answer = await ask(fake, engine, BRIDGE_QUESTION)

    await fake.send_message_create("When will the stadium building work start?", reply_to=answer["id"])
    await fake.wait_until(lambda: len(bot_messages(fake, world.channel_a)) == 2)
    reply = bot_messages(fake, world.channel_a)[1]

    assert reply["content"] == render.WIDENED
    assert reply["embeds"][0]["title"] == STADIUM_TITLE


@pytest.mark.usefixtures("stories")
async def test_ask_one_article_quotes_only_it(
    fake: FakeDiscord, engine: Engine, world: World, bot: NewsQuoteBot
) -> None:
    typed = await fake.send_interaction("ask", {"question": "x", "article": "riverside"}, focused="article")
    choices = (await callback(fake, typed)).json["data"]["choices"]
    assert [c["name"] for c in choices] == [f"#2 {STADIUM_TITLE}"]

    answer = await ask(fake, engine, BRIDGE_QUESTION, article=choices[0]["value"])

    assert {e["title"] for e in answer["embeds"]} == {STADIUM_TITLE}


@pytest.mark.usefixtures("stories")
async def test_ask_an_article_that_is_not_there_says_so(fake: FakeDiscord, bot: NewsQuoteBot) -> None:
    interaction = await fake.send_interaction("ask", {"question": BRIDGE_QUESTION, "article": "#99"})
    assert "There is no article #99 here" in await told_privately(fake, interaction)


# --- threads ---------------------------------------------------------------------------------------------


async def open_thread(fake: FakeDiscord, answer: Payload) -> Payload:
    """Press "Open thread" and return the thread once the bot has posted its first message in it."""
    pressed = await click(fake, answer, "Open thread")
    assert "Open thread" not in buttons(pressed["data"])
    await fake.wait_for_request("POST", rf"/channels/{answer['id']}/messages")
    found = fake.find_channel(answer["id"])
    assert found is not None
    return found[1]


@pytest.mark.usefixtures("stories")
async def test_open_thread_starts_a_thread_on_the_answer_named_after_its_question(
    fake: FakeDiscord, engine: Engine, world: World, bot: NewsQuoteBot
) -> None:
    answer = await ask(fake, engine, BRIDGE_QUESTION)

    thread = await open_thread(fake, answer)

    assert (thread["name"], thread["parent_id"]) == (BRIDGE_QUESTION, world.channel_a)
    [intro] = bot_messages(fake, thread["id"])
    assert intro["content"] == render.thread_intro(f"<@{fake.bot_user['id']}>", reads_messages=False)


async def test_a_question_in_the_thread_is_a_follow_up(
    fake: FakeDiscord, engine: Engine, world: World, stories: dict[str, int], start_bot: StartBot
) -> None:
    await start_bot(message_content=True)
    answer = await ask(fake, engine, BRIDGE_QUESTION)
    thread = await open_thread(fake, answer)

    await fake.send_message_create(CRITICS_QUESTION, channel_id=thread["id"])  # no mention needed: the intent is on
    await fake.wait_until(lambda: len(bot_messages(fake, thread["id"])) == 2)
    reply = bot_messages(fake, thread["id"])[1]
    await recorded(fake, engine, reply)

    assert BRIDGE_CRITICS in reply["embeds"][0]["description"]
    assert set(buttons(reply)) == {"More", "\N{THUMBS UP SIGN}", "\N{THUMBS DOWN SIGN}"}  # no thread in a thread
    assert engine.answer_in_thread(thread["id"]).id == engine.answer_for_message(reply["id"]).id  # type: ignore[union-attr]


@pytest.mark.usefixtures("stories")
async def test_without_the_intent_a_thread_question_needs_a_mention(
    fake: FakeDiscord, engine: Engine, world: World, bot: NewsQuoteBot
) -> None:
    answer = await ask(fake, engine, BRIDGE_QUESTION)
    thread = await open_thread(fake, answer)

    await fake.send_message_create(CRITICS_QUESTION, channel_id=thread["id"])  # blank to the bot
    await fake.send_message_create(mention(fake, CRITICS_QUESTION), channel_id=thread["id"])
    await fake.wait_until(lambda: len(bot_messages(fake, thread["id"])) == 2)
    await asyncio.sleep(0.05)

    [_, reply] = bot_messages(fake, thread["id"])
    assert BRIDGE_CRITICS in reply["embeds"][0]["description"]


@pytest.mark.usefixtures("stories")
async def test_a_thread_the_bot_did_not_start_is_left_alone(
    fake: FakeDiscord, world: World, start_bot: StartBot
) -> None:
    await start_bot(message_content=True)
    started = await fake.send_message_create("Anyone following the bridge story?")
    thread = make_thread("chat", parent=world.guild_a["channels"][0], owner_id=world.alice["id"], id=started["id"])
    world.guild_a.setdefault("threads", []).append(thread)

    await fake.send_message_create(BRIDGE_QUESTION, channel_id=thread["id"])
    await fake.send_message_create(mention(fake, BRIDGE_QUESTION), channel_id=thread["id"])
    await fake.wait_until(lambda: len(bot_messages(fake, thread["id"])) == 1)
    await asyncio.sleep(0.05)

    assert len(bot_messages(fake, thread["id"])) == 1  # only the mention was answered


@pytest.mark.usefixtures("stories")
async def test_a_second_thread_on_the_same_answer_is_refused_privately(
    fake: FakeDiscord, engine: Engine, world: World, bot: NewsQuoteBot
) -> None:
    answer = await ask(fake, engine, BRIDGE_QUESTION)
    stale = dict(answer)  # the message as another user's client still shows it, button and all
    await open_thread(fake, answer)

    custom_id = buttons(stale)["Open thread"]["custom_id"]
    interaction = await fake.send_interaction(custom_id=custom_id, message=stale)

    assert await told_privately(fake, interaction) == render.NO_THREAD
