"""``/add``, ``/articles``, ``/remove`` and ``/stats`` end to end, and the event loop staying free while indexing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web

from bot import render
from bot.client import NewsQuoteBot
from bot.cogs.articles import MAX_PASTE
from index import AddResult, Engine, Settings
from index.wording import plural
from tests.bot.conftest import StartBot
from tests.bot.support import (
    BRIDGE,
    BRIDGE_TITLE,
    ORCHARD,
    ORCHARD_TITLE,
    SlowEmbedder,
    World,
    add_text,
    assert_fits,
    callback,
    final_edit,
    told_privately,
)
from tests.fakes.discord_server import EPHEMERAL, FakeDiscord
from tests.index.articles import SPY_CALL_CLUTTER, SPY_CALL_PASTED, SPY_CALL_TITLE

PAGE = f"""<!doctype html>
<html><head><title>{BRIDGE_TITLE} | Harbour News</title></head>
<body><nav><a href="/">Home</a> <a href="/sport">Sport</a></nav>
<article><h1>{BRIDGE_TITLE}</h1>
<p>The city council met on Tuesday evening to discuss the harbour project, which has divided the town.</p>
<p>Mayor Linda Park announced that the new harbour bridge will open to traffic in May, after years of work.</p>
<p>Construction costs reached forty million dollars, twice the original estimate, according to the council.</p>
<p>Critics said the project had been delayed by two years because of flooding along the river banks.</p>
</article><footer>Copyright Harbour News</footer></body></html>"""


@pytest_asyncio.fixture
async def news_site(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """Serve an article page on 127.0.0.1 and let the engine fetch from loopback; yield its URL."""

    async def page(_request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/bridge.html", page)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    monkeypatch.setattr(engine.settings, "allow_private_hosts", True)
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/bridge.html"
    await runner.cleanup()


async def test_add_url_fetches_the_page_and_reports_the_article(
    fake: FakeDiscord, world: World, engine: Engine, news_site: str, bot: NewsQuoteBot
) -> None:
    interaction = await fake.send_interaction("add url", {"url": news_site})
    edit = await final_edit(fake, interaction, "Added")

    assert interaction.response_type == 5
    assert interaction.callbacks[0]["data"]["flags"] & EPHEMERAL
    [article] = engine.articles(world.collection_a)
    assert article.url == news_site
    assert article.added_by == world.alice["id"]
    assert edit.json["content"] == render.added(AddResult(article))


async def test_add_text_adds_the_pasted_article(
    fake: FakeDiscord, world: World, engine: Engine, bot: NewsQuoteBot
) -> None:
    interaction = await add_text(fake, BRIDGE, BRIDGE_TITLE)
    edit = await final_edit(fake, interaction, "Added")

    [article] = engine.articles(world.collection_a)
    assert (article.title, article.source) == (BRIDGE_TITLE, "text")
    assert f"**{BRIDGE_TITLE}** (#{article.id}): {plural(article.chunks, 'chunk')}," in edit.json["content"]


async def test_add_text_form_keeps_the_paragraphs_and_drops_the_page_clutter(
    fake: FakeDiscord, world: World, engine: Engine, bot: NewsQuoteBot
) -> None:
    pasted = SPY_CALL_PASTED[:MAX_PASTE].rsplit("\n\n", 1)[0]  # as much as the form takes, whole paragraphs

    submitted = await add_text(fake, pasted)
    await final_edit(fake, submitted, "Added")

    [article] = engine.articles(world.collection_a)
    text = engine.article_text(article.id, world.collection_a)
    assert article.title == SPY_CALL_TITLE
    assert "\n\nDmitri Vasko, the director" in text  # the paragraphs arrived as paragraphs
    assert [c for c in SPY_CALL_CLUTTER if c in text] == []


async def test_add_text_opens_a_form_that_says_its_limit_and_takes_a_title(
    fake: FakeDiscord, bot: NewsQuoteBot
) -> None:
    opened = await fake.send_interaction("add text", {"title": BRIDGE_TITLE})
    await fake.wait_until(lambda: bool(opened.callbacks))

    [callback_] = opened.callbacks
    assert callback_["type"] == 9
    [title_row, text_row] = callback_["data"]["components"]
    assert title_row["components"][0]["value"] == BRIDGE_TITLE
    box = text_row["components"][0]
    assert (box["style"], box["max_length"]) == (2, 4000)
    assert "/add file" in box["placeholder"]


async def test_add_url_takes_a_title(
    fake: FakeDiscord, world: World, engine: Engine, news_site: str, bot: NewsQuoteBot
) -> None:
    interaction = await fake.send_interaction("add url", {"url": news_site, "title": "Bridge story"})
    await final_edit(fake, interaction, "Added")

    [article] = engine.articles(world.collection_a)
    assert article.title == "Bridge story"


async def test_add_file_downloads_the_attachment_from_discord(
    fake: FakeDiscord, world: World, engine: Engine, bot: NewsQuoteBot
) -> None:
    attachment = fake.add_attachment("orchards.md", f"# {ORCHARD_TITLE}\n\n{ORCHARD}\n".encode(), "text/markdown")

    interaction = await fake.send_interaction("add file", {"attachment": attachment})
    await final_edit(fake, interaction, "Added")

    assert any(r.method == "GET" and r.path == "/attachments/orchards.md" for r in fake.requests)
    [article] = engine.articles(world.collection_a)
    assert (article.title, article.source) == (ORCHARD_TITLE, "markdown")


@pytest.mark.parametrize(
    ("filename", "size", "says"),
    [("photo.png", 1000, "Unsupported file type '.png'"), ("huge.txt", 50_000_000, "the limit is 5,000,000")],
)
async def test_bad_attachment_is_refused_before_downloading(
    fake: FakeDiscord, bot: NewsQuoteBot, filename: str, size: int, says: str
) -> None:
    attachment = fake.add_attachment(filename, b"x" * 1000) | {"size": size}

    interaction = await fake.send_interaction("add file", {"attachment": attachment})
    told = await told_privately(fake, interaction)

    assert says in told
    assert not any(r.path.startswith("/attachments/") for r in fake.requests)


async def test_adding_the_same_text_twice_says_it_is_already_there(
    fake: FakeDiscord, world: World, engine: Engine, bot: NewsQuoteBot
) -> None:
    first = await add_text(fake, BRIDGE, BRIDGE_TITLE)
    await final_edit(fake, first, "Added")
    again = await add_text(fake, BRIDGE, "Same story")
    edit = await final_edit(fake, again, "Already here")

    assert "same text" in edit.json["content"]
    assert len(engine.articles(world.collection_a)) == 1


async def test_adding_again_too_soon_says_when_to_try_again(fake: FakeDiscord, start_bot: StartBot) -> None:
    await start_bot(add_cooldown_seconds=60)

    first = await add_text(fake, BRIDGE, BRIDGE_TITLE)
    await final_edit(fake, first, "Added")
    second = await add_text(fake, ORCHARD, ORCHARD_TITLE)
    told = await told_privately(fake, second)

    assert told in (render.cooldown(60), render.cooldown(59))


async def test_articles_pages_through_the_list_with_buttons(
    fake: FakeDiscord, world: World, engine: Engine, start_bot: StartBot
) -> None:
    for n in range(7):
        engine.add_text(f"Story number {n} is about the harbour. {BRIDGE}", world.collection_a, title=f"Story {n}")
    await start_bot(articles_per_page=3)

    listing = await fake.send_interaction("articles")
    first = (await callback(fake, listing)).json["data"]
    [row] = first["components"]
    older = next(b for b in row["components"] if b["label"] == "Older")
    click = await fake.send_interaction(custom_id=older["custom_id"], message=listing.original)
    second = (await callback(fake, click)).json

    assert first["flags"] & EPHEMERAL
    assert first["embeds"][0]["fields"][0]["name"].endswith("Story 6")
    assert first["embeds"][0]["footer"]["text"] == "Page 1 of 3 · 7 articles"
    assert second["type"] == 7  # the listing message itself is updated
    assert [f["name"].split(" · ")[1] for f in second["data"]["embeds"][0]["fields"]] == [
        "Story 3",
        "Story 2",
        "Story 1",
    ]
    assert_fits(second["data"])


async def test_remove_is_refused_to_a_member_who_did_not_add_the_article(
    fake: FakeDiscord, world: World, engine: Engine, bot: NewsQuoteBot
) -> None:
    article = engine.add_text(BRIDGE, world.collection_a, title=BRIDGE_TITLE, added_by=world.bob["id"]).article

    interaction = await fake.send_interaction("remove", {"article": str(article.id)}, user_id=world.alice["id"])
    told = await told_privately(fake, interaction)

    assert "only its adder or an admin can remove it" in told
    assert interaction.response_type == 4
    assert engine.articles(world.collection_a) == [article]


@pytest.mark.parametrize("admin", ["bob", "carol"], ids=["manage-server", "admin-role"])
async def test_remove_is_allowed_to_an_admin(
    fake: FakeDiscord, world: World, engine: Engine, bot: NewsQuoteBot, admin: str
) -> None:
    article = engine.add_text(BRIDGE, world.collection_a, title=BRIDGE_TITLE, added_by=world.alice["id"]).article

    user = getattr(world, admin)["id"]
    interaction = await fake.send_interaction("remove", {"article": str(article.id)}, user_id=user)
    edit = await final_edit(fake, interaction, "Removed")

    assert f"**{BRIDGE_TITLE}** (#{article.id}" in edit.json["content"]
    assert engine.articles(world.collection_a) == []


async def test_member_may_remove_an_article_they_added_by_its_title(
    fake: FakeDiscord, world: World, engine: Engine, bot: NewsQuoteBot
) -> None:
    engine.add_text(BRIDGE, world.collection_a, title=BRIDGE_TITLE, added_by=world.alice["id"])

    interaction = await fake.send_interaction("remove", {"article": "harbour bridge"})
    await final_edit(fake, interaction, "Removed")

    assert engine.articles(world.collection_a) == []


async def test_remove_autocomplete_offers_matching_titles_of_this_server_only(
    fake: FakeDiscord, world: World, engine: Engine, bot: NewsQuoteBot
) -> None:
    ours = engine.add_text(BRIDGE, world.collection_a, title=BRIDGE_TITLE).article
    engine.add_text(ORCHARD, world.collection_a, title=ORCHARD_TITLE)
    engine.add_text(f"A second bridge story. {ORCHARD}", world.collection_b, title="Another bridge")

    interaction = await fake.send_interaction("remove", {"article": "bridge"}, focused="article")
    response = await callback(fake, interaction)

    assert response.json["type"] == 8
    assert response.json["data"]["choices"] == [{"name": f"#{ours.id} {BRIDGE_TITLE}", "value": str(ours.id)}]


async def test_stats_shows_counts_and_model(fake: FakeDiscord, world: World, engine: Engine, bot: NewsQuoteBot) -> None:
    engine.add_text(BRIDGE, world.collection_a, title=BRIDGE_TITLE)

    interaction = await fake.send_interaction("stats")
    embed = (await callback(fake, interaction)).json["data"]["embeds"][0]

    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert (fields["Articles"], fields["Model"]) == ("1", "hash-test")
    assert fields["Chunks"] == str(engine.stats(world.collection_a).chunks)


async def test_event_loop_keeps_serving_while_an_article_is_being_indexed(
    fake: FakeDiscord, world: World, settings: Settings, start_bot: StartBot
) -> None:
    gate = threading.Event()
    embedder = SlowEmbedder(gate=gate)
    slow = Engine(settings, embedder=embedder)
    fake.heartbeat_interval = 50  # milliseconds: discord.py's heartbeats need a free event loop
    try:
        await start_bot(engine=slow)
        adding = await add_text(fake, BRIDGE, BRIDGE_TITLE)
        await asyncio.to_thread(embedder.waiting.wait, 5)  # the worker thread is now stuck embedding
        beats = sum(1 for p in fake.gateway_received if p.get("op") == 1)
        meanwhile = await fake.send_interaction("stats")
        stats = await callback(fake, meanwhile)
        await fake.wait_until(lambda: sum(1 for p in fake.gateway_received if p.get("op") == 1) >= beats + 3)

        assert stats.json["data"]["embeds"][0]["title"] == "Index statistics"
        assert not any("Added" in str(r.json) for r in fake.requests)  # the article is still being indexed
    finally:
        gate.set()
    await final_edit(fake, adding, "Added")
    slow.close()
