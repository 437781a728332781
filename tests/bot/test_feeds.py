"""``/feed add|list|remove`` and the background poller, through the real client, the fake Discord and a feed
served on 127.0.0.1."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import cast

import pytest
import pytest_asyncio

from bot.client import NewsQuoteBot
from bot.cogs.feeds import Feeds
from index import Engine, Settings
from tests.bot.conftest import StartBot
from tests.bot.support import MANAGE_GUILD, World, callback, channel_posts, final_edit, pings_nobody, told_privately
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.embedder import HashEmbedder
from tests.index.local_server import LocalServer, respond, running_server
from tests.index.test_feeds import FeedRoute, rss, serve_stories, story


@pytest.fixture
def site() -> Iterator[LocalServer]:
    """A news site on 127.0.0.1: an RSS feed of three stories at /feed.xml, and the stories."""
    with running_server() as server:
        server.routes["/feed.xml"] = FeedRoute(rss(server, range(3)))
        serve_stories(server, range(10))
        yield server


@pytest.fixture
def feed_engine(settings: Settings) -> Iterator[Engine]:
    """An engine allowed to fetch from 127.0.0.1, with no pause between requests to one host."""
    engine = Engine(settings.model_copy(update={"allow_private_hosts": True, "feed_host_seconds": 0.0}), HashEmbedder())
    yield engine
    engine.close()


@pytest_asyncio.fixture
async def feed_bot(start_bot: StartBot, feed_engine: Engine) -> NewsQuoteBot:
    return await start_bot(engine=feed_engine)


def route(site: LocalServer) -> FeedRoute:
    feed = site.routes["/feed.xml"]
    assert isinstance(feed, FeedRoute)
    return feed


def cog(bot: NewsQuoteBot) -> Feeds:
    feeds = bot.get_cog("Feeds")  # loaded as an extension: a module object of its own, so no isinstance
    assert feeds is not None
    return cast(Feeds, feeds)


async def wait_for_poll(engine: Engine, collection: str) -> None:
    """Wait until every feed of ``collection`` has been polled successfully once."""
    for _ in range(200):
        feeds = await asyncio.to_thread(engine.feeds, collection)
        if feeds and all(f.last_ok for f in feeds):
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"the feeds of {collection} were never polled")


async def test_feed_and_rebuild_are_hidden_from_members_without_manage_server(
    fake: FakeDiscord, bot: NewsQuoteBot
) -> None:
    commands = {c["name"]: c for c in fake.global_commands}

    assert int(commands["feed"]["default_member_permissions"]) == MANAGE_GUILD
    assert int(commands["rebuild"]["default_member_permissions"]) == MANAGE_GUILD
    assert commands["ask"].get("default_member_permissions") is None
    assert {o["name"] for o in commands["feed"]["options"]} == {"add", "list", "remove"}


@pytest.mark.parametrize("command", ["feed add", "feed remove"])
@pytest.mark.usefixtures("feed_bot")
async def test_following_and_unfollowing_are_refused_to_a_member(
    fake: FakeDiscord, world: World, feed_engine: Engine, site: LocalServer, command: str
) -> None:
    option = {"url": site.url("/feed.xml")} if command == "feed add" else {"feed": "1"}

    interaction = await fake.send_interaction(command, option, user_id=world.alice["id"])
    told = await told_privately(fake, interaction)

    assert told.startswith("Only members with the Manage Server permission or an admin role can")
    assert feed_engine.feeds(world.collection_a) == []
    assert route(site).requests == []


async def test_feed_add_follows_and_the_poller_adds_and_announces_its_articles(
    fake: FakeDiscord, world: World, feed_engine: Engine, start_bot: StartBot, site: LocalServer
) -> None:
    await start_bot(engine=feed_engine)

    interaction = await fake.send_interaction(
        "feed add", {"url": site.url("/feed.xml"), "channel": world.channel_a}, user_id=world.carol["id"]
    )
    reply = await final_edit(fake, interaction, "Following")
    await wait_for_poll(feed_engine, world.collection_a)
    await fake.wait_until(lambda: bool(channel_posts(fake, world.channel_a)))

    assert reply.json["content"].startswith("Following **Harbour news** (feed #1, 3 entries now).")
    assert f"announced in <#{world.channel_a}>" in reply.json["content"]
    [post] = channel_posts(fake, world.channel_a)
    lines = post.json["content"].splitlines()
    assert lines[0] == "New from **Harbour news**:"
    assert [line.split("**")[1] for line in lines[1:]] == [f"Harbour story number {n}" for n in (2, 1, 0)]
    assert all(line.startswith("Added: ") for line in lines[1:])
    assert pings_nobody(post.json)
    assert feed_engine.articles(world.collection_b) == []


async def test_feed_add_refuses_a_page_that_is_not_a_feed(
    fake: FakeDiscord, world: World, feed_engine: Engine, start_bot: StartBot, site: LocalServer
) -> None:
    site.routes["/front"] = respond("<html><body><h1>Front page</h1></body></html>")
    await start_bot(engine=feed_engine)

    interaction = await fake.send_interaction("feed add", {"url": site.url("/front")}, user_id=world.bob["id"])
    told = await told_privately(fake, interaction)

    assert told == f"{site.url('/front')} is text/html, not an RSS or Atom feed."
    assert feed_engine.feeds(world.collection_a) == []


async def test_feed_list_shows_limits_last_success_and_last_error(
    fake: FakeDiscord, world: World, feed_engine: Engine, start_bot: StartBot, site: LocalServer
) -> None:
    feed_id = feed_engine.add_feed(site.url("/feed.xml"), world.collection_a).feed.id
    ok = feed_engine.poll_feed(feed_id, world.collection_a).feed
    route(site).status = 500
    feed_engine.poll_feed(feed_id, world.collection_a)
    await start_bot(engine=feed_engine)

    interaction = await fake.send_interaction("feed list", user_id=world.alice["id"])  # listing is not admin-only
    embed = (await callback(fake, interaction)).json["data"]["embeds"][0]

    [field] = embed["fields"]
    assert field["name"] == "#1 · Harbour news"
    assert field["value"].splitlines()[:2] == [
        f"3 articles added · last success <t:{int(_timestamp(ok.last_ok))}:R>",
        f"**Failing:** 1 failure in a row, last: {site.url('/feed.xml')} answered HTTP 500 Internal Server Error.",
    ]
    assert embed["footer"]["text"] == (
        "1 of 20 feeds · up to 10 new articles per feed a poll · polled every 15 minutes or so"
    )


async def test_feed_remove_offers_this_servers_feeds_and_keeps_their_articles(
    fake: FakeDiscord, world: World, feed_engine: Engine, start_bot: StartBot, site: LocalServer
) -> None:
    feed_id = feed_engine.add_feed(site.url("/feed.xml"), world.collection_a).feed.id
    feed_engine.poll_feed(feed_id, world.collection_a)
    await start_bot(engine=feed_engine)

    elsewhere = await fake.send_interaction("feed remove", {"feed": "harb"}, focused="feed", channel_id=world.channel_b)
    offered = await fake.send_interaction("feed remove", {"feed": "harb"}, focused="feed")
    removed = await fake.send_interaction("feed remove", {"feed": str(feed_id)}, user_id=world.bob["id"])
    told = await told_privately(fake, removed)

    assert (await callback(fake, elsewhere)).json["data"]["choices"] == []
    assert (await callback(fake, offered)).json["data"]["choices"] == [{"name": "#1 Harbour news", "value": "1"}]
    assert told == (
        "Stopped following **Harbour news** (feed #1). The 3 articles it brought stay (remove them with /remove)."
    )
    assert feed_engine.feeds(world.collection_a) == []
    assert len(feed_engine.articles(world.collection_a)) == 3


async def test_a_feed_of_one_server_cannot_be_removed_from_another(
    fake: FakeDiscord, world: World, feed_engine: Engine, start_bot: StartBot, site: LocalServer
) -> None:
    feed_engine.add_feed(site.url("/feed.xml"), world.collection_a)
    world.guild_b["roles"][0]["permissions"] = str(MANAGE_GUILD)  # everyone manages server B
    await start_bot(engine=feed_engine)

    interaction = await fake.send_interaction("feed remove", {"feed": "1"}, channel_id=world.channel_b)
    told = await told_privately(fake, interaction)

    assert told == "There is no feed #1 here: list the feeds to see their numbers."
    assert len(feed_engine.feeds(world.collection_a)) == 1


async def test_a_due_feed_is_polled_when_the_bot_starts(
    world: World, feed_engine: Engine, start_bot: StartBot, site: LocalServer
) -> None:
    feed_engine.add_feed(site.url("/feed.xml"), world.collection_a)  # due at once, as after a restart

    await start_bot(engine=feed_engine)
    await wait_for_poll(feed_engine, world.collection_a)

    [feed] = feed_engine.feeds(world.collection_a)
    assert (feed.added, feed.failures, feed.etag) == (3, 0, '"v1"')


async def test_one_poll_cycle_can_be_run_now_and_a_304_adds_nothing(
    world: World, feed_engine: Engine, start_bot: StartBot, site: LocalServer
) -> None:
    bot = await start_bot(engine=feed_engine)
    feeds = cog(bot)
    await feeds.poll_due()  # the loop's first cycle may have started: wait for it, there is nothing due
    feed_engine.add_feed(site.url("/feed.xml"), world.collection_a)

    first = await feeds.poll_due()
    feed_engine.store.update_feed(world.collection_a, 1, next_poll="2000-01-01T00:00:00+00:00")
    second = await feeds.poll_due()

    assert [len(p.added) for p in first] == [3]
    assert [(p.not_modified, p.entries) for p in second] == [(True, [])]
    assert route(site).requests[-1]["If-None-Match"] == '"v1"'


async def test_the_event_loop_keeps_serving_while_a_feed_is_polled(
    fake: FakeDiscord, world: World, feed_engine: Engine, start_bot: StartBot, site: LocalServer
) -> None:
    gate, waiting = threading.Event(), threading.Event()

    def slow_story(handler: BaseHTTPRequestHandler) -> None:
        waiting.set()
        gate.wait(10)
        respond(story(0), "text/plain")(handler)

    site.routes["/story/0"] = slow_story
    feed_engine.add_feed(site.url("/feed.xml"), world.collection_a)
    try:
        await start_bot(engine=feed_engine)
        assert await asyncio.to_thread(waiting.wait, 10)

        interaction = await fake.send_interaction("feed list")
        embed = (await callback(fake, interaction)).json["data"]["embeds"][0]
        assert embed["fields"][0]["name"] == "#1 · Harbour news"
    finally:
        gate.set()
    await wait_for_poll(feed_engine, world.collection_a)


async def test_stopping_the_bot_stops_the_poller(world: World, feed_engine: Engine, start_bot: StartBot) -> None:
    bot = await start_bot(engine=feed_engine)
    task = cog(bot).task
    assert task is not None

    await bot.close()

    assert task.done()


def _timestamp(stamp: str | None) -> float:
    from datetime import datetime

    assert stamp is not None
    return datetime.fromisoformat(stamp).timestamp()
