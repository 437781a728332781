"""Adding the links of a message: the "Add article" message command, and watched channels, end to end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web

from bot import render
from bot.client import NewsQuoteBot
from bot.cogs.articles import MAX_LINKS, links_in
from index import AddResult, Engine
from index.errors import FetchError
from tests.bot.conftest import StartBot
from tests.bot.support import BRIDGE_TITLE, ORCHARD_TITLE, World, callback, final_edit, told_privately, wait_for_posts
from tests.fakes.discord_server import EPHEMERAL, FakeDiscord

PAGES = {
    "/bridge.html": (
        BRIDGE_TITLE,
        "Mayor Linda Park announced that the new harbour bridge will open to traffic in May, after years of work. "
        "Construction costs reached forty million dollars, twice the original estimate, according to the council.",
    ),
    "/orchard.html": (
        ORCHARD_TITLE,
        "Farmers in the valley picked more apples this autumn than in any year on record, growers said. "
        "A warm spring and steady rain helped the orchards, and prices at the market fell by a third.",
    ),
}


def page(title: str, text: str) -> str:
    head = f"<html><head><title>{title}</title></head>"
    return f"{head}<body><article><h1>{title}</h1><p>{text}</p></article></body></html>"


@pytest_asyncio.fixture
async def site(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """Serve two article pages on 127.0.0.1 (anything else is a 404); yield the site's base URL."""

    async def serve(request: web.Request) -> web.Response:
        if request.path not in PAGES:
            raise web.HTTPNotFound()
        return web.Response(text=page(*PAGES[request.path]), content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    monkeypatch.setattr(engine.settings, "allow_private_hosts", True)
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@pytest.mark.parametrize(
    ("text", "links"),
    [
        ("read https://a.example/x.", ["https://a.example/x"]),
        ("<https://a.example/x> and (see https://b.example/y)", ["https://a.example/x", "https://b.example/y"]),
        ("[story](https://a.example/x) **https://b.example/y**", ["https://a.example/x", "https://b.example/y"]),
        ("https://en.wikipedia.org/wiki/Bridge_(structure), twice: https://en.wikipedia.org/wiki/Bridge_(structure)",
         ["https://en.wikipedia.org/wiki/Bridge_(structure)"]),
        ("ftp://a.example/x, http:// and www.example.com", []),
    ],
)  # fmt: skip
def test_links_are_found_as_a_reader_sees_them(text: str, links: list[str]) -> None:
    assert links_in(text) == links


async def test_add_article_is_a_message_command(fake: FakeDiscord, bot: NewsQuoteBot) -> None:
    [command] = [c for c in fake.global_commands if c["name"] == "Add article"]
    assert command["type"] == 3


async def test_add_article_adds_every_link_and_says_what_became_of_each(
    fake: FakeDiscord, world: World, engine: Engine, site: str, bot: NewsQuoteBot
) -> None:
    await asyncio.to_thread(engine.add_url, f"{site}/orchard.html", world.collection_a)  # the site runs on this loop
    posted = await fake.send_message_create(
        f"Two stories: {site}/bridge.html and {site}/orchard.html, and a dead link {site}/gone.html",
        author_id=world.bob["id"],
    )

    interaction = await fake.send_interaction("Add article", target=posted, user_id=world.alice["id"])
    edit = await final_edit(fake, interaction, "Added")

    assert interaction.callbacks[0]["data"]["flags"] & EPHEMERAL
    lines = edit.json["content"].splitlines()
    assert lines[0].startswith(f"Added **{BRIDGE_TITLE}** (#2, 1 chunk)")
    assert lines[1].startswith(f"Already here: **{ORCHARD_TITLE}** (#1)")
    assert lines[2].startswith(f"Refused <{site}/gone.html>: ")
    bridge = engine.article(2, world.collection_a)
    assert (bridge.url, bridge.added_by) == (f"{site}/bridge.html", world.alice["id"])


async def test_add_article_on_a_message_without_links_says_so(fake: FakeDiscord, bot: NewsQuoteBot) -> None:
    posted = await fake.send_message_create("No links here, only words.")
    interaction = await fake.send_interaction("Add article", target=posted)
    assert await told_privately(fake, interaction) == render.links_added([])


async def test_add_article_takes_at_most_a_few_links(
    fake: FakeDiscord, engine: Engine, site: str, bot: NewsQuoteBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    tried: list[str] = []

    def read_url(url: str, *args: object, **kwargs: object) -> AddResult:
        tried.append(url)
        raise FetchError("The page answered 404.")

    monkeypatch.setattr(engine, "read_url", read_url)
    links = [f"{site}/{n}.html" for n in range(MAX_LINKS + 3)]
    posted = await fake.send_message_create(" ".join(links))

    interaction = await fake.send_interaction("Add article", target=posted)
    told = (await final_edit(fake, interaction, "left out")).json["content"]

    assert tried == links[:MAX_LINKS]
    assert told.splitlines()[-1] == f"3 more links left out: at most {MAX_LINKS} from one message."


# --- watched channels ---------------------------------------------------------------------------------


async def test_watching_needs_the_message_content_intent(fake: FakeDiscord, world: World, bot: NewsQuoteBot) -> None:
    interaction = await fake.send_interaction("watch on", user_id=world.bob["id"])
    assert await told_privately(fake, interaction) == render.WATCH_NEEDS_CONTENT


async def test_watching_is_for_admins_and_hidden_from_members(
    fake: FakeDiscord, world: World, start_bot: StartBot
) -> None:
    await start_bot(message_content=True)
    [watch] = [c for c in fake.global_commands if c["name"] == "watch"]
    assert int(watch["default_member_permissions"]) == 1 << 5  # Manage Server

    interaction = await fake.send_interaction("watch on", user_id=world.alice["id"])
    assert (await told_privately(fake, interaction)).startswith("Only members with the Manage Server permission")


async def test_links_posted_in_a_watched_channel_are_added_until_it_is_unwatched(
    fake: FakeDiscord, world: World, engine: Engine, site: str, start_bot: StartBot
) -> None:
    await start_bot(message_content=True)
    turned_on = await fake.send_interaction("watch on", user_id=world.carol["id"])
    await callback(fake, turned_on)

    await fake.send_message_create(f"Big news: {site}/bridge.html", author_id=world.alice["id"])
    [reply] = await wait_for_posts(fake, world.channel_a)
    assert reply.json["content"].startswith(f"Added **{BRIDGE_TITLE}**")
    [article] = engine.articles(world.collection_a)
    assert article.added_by == world.alice["id"]

    listed = await fake.send_interaction("watch list")
    assert f"<#{world.channel_a}>" in await told_privately(fake, listed)

    turned_off = await fake.send_interaction("watch off", user_id=world.carol["id"])
    await callback(fake, turned_off)
    await fake.send_message_create(f"And another: {site}/orchard.html")
    await asyncio.sleep(0.2)
    assert len(engine.articles(world.collection_a)) == 1


async def test_a_watch_outlives_a_restart_and_repeats_stay_quiet(
    fake: FakeDiscord, world: World, engine: Engine, site: str, start_bot: StartBot
) -> None:
    await asyncio.to_thread(engine.add_url, f"{site}/orchard.html", world.collection_a)  # the site runs on this loop
    engine.watch(world.collection_a, world.channel_a, True)  # as an earlier run left it
    await start_bot(message_content=True)

    await fake.send_message_create(f"Old news: {site}/orchard.html")
    await fake.send_message_create(f"New: {site}/bridge.html")
    [reply] = await wait_for_posts(fake, world.channel_a)
    await asyncio.sleep(0.1)

    assert reply.json["content"].startswith(f"Added **{BRIDGE_TITLE}**")  # the duplicate got no reply
    assert len(engine.articles(world.collection_a)) == 2
