"""``/rebuild``: refused to members, run for admins with progress edits, one at a time per server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from bot import render
from bot.client import NewsQuoteBot
from index import Engine, Settings
from tests.bot.conftest import StartBot
from tests.bot.support import BRIDGE, ORCHARD, SlowEmbedder, World, final_edit, told_privately
from tests.fakes.discord_server import FakeDiscord


def seed(engine: Engine, world: World) -> None:
    for n, text in enumerate((BRIDGE, ORCHARD, f"Third story. {BRIDGE} {ORCHARD}")):
        engine.add_text(text, world.collection_a, title=f"Story {n}")


async def test_rebuild_is_refused_to_a_member(
    fake: FakeDiscord, world: World, engine: Engine, bot: NewsQuoteBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(engine, "rebuild", lambda collection, progress=None: calls.append(collection))

    interaction = await fake.send_interaction("rebuild", user_id=world.alice["id"])
    told = await told_privately(fake, interaction)

    assert told.startswith("Only members with the Manage Server permission or an admin role")
    assert calls == []


@pytest.mark.parametrize("admin", ["bob", "carol"], ids=["manage-server", "admin-role"])
async def test_rebuild_by_an_admin_edits_progress_then_the_result(
    fake: FakeDiscord, world: World, settings: Settings, start_bot: StartBot, admin: str
) -> None:
    slow = Engine(settings, embedder=SlowEmbedder(delay=0.03))
    seed(slow, world)
    await start_bot(engine=slow)

    interaction = await fake.send_interaction("rebuild", user_id=getattr(world, admin)["id"])
    done = await final_edit(fake, interaction, "Rebuilt")
    edits = [r.json["content"] for r in fake.requests if r.method == "PATCH" and interaction.token in r.path]

    assert interaction.response_type == 5
    assert done.json["content"].startswith("Rebuilt: 3 articles")
    assert edits[-1] == done.json["content"]
    progress = edits[:-1]
    chunks = slow.stats(world.collection_a).chunks
    done_counts = [int(e.split("… ")[1].split(" of ")[0]) for e in progress]
    assert progress
    assert progress == [render.rebuild_progress(n, chunks) for n in done_counts]
    assert done_counts == sorted(done_counts)
    slow.close()


@pytest.fixture
def gated(world: World, settings: Settings) -> Iterator[tuple[Engine, SlowEmbedder, threading.Event]]:
    """An engine seeded with three stories whose embedder then blocks until the test opens the gate."""
    gate = threading.Event()
    embedder = SlowEmbedder()
    engine = Engine(settings, embedder=embedder)
    seed(engine, world)
    embedder.gate = gate
    yield engine, embedder, gate
    gate.set()
    engine.close()


async def test_second_rebuild_of_the_same_server_is_refused_while_one_runs(
    fake: FakeDiscord, world: World, start_bot: StartBot, gated: tuple[Engine, SlowEmbedder, threading.Event]
) -> None:
    slow, embedder, gate = gated
    await start_bot(engine=slow)
    try:
        first = await fake.send_interaction("rebuild", user_id=world.bob["id"])
        await asyncio.to_thread(embedder.waiting.wait, 5)
        second = await fake.send_interaction("rebuild", user_id=world.carol["id"])
        told = await told_privately(fake, second)
    finally:
        gate.set()
    await final_edit(fake, first, "Rebuilt")

    assert told == "A rebuild of this server's index is already running."


async def test_a_rebuild_outlasting_the_interaction_announces_its_result_in_the_channel(
    fake: FakeDiscord, world: World, start_bot: StartBot, gated: tuple[Engine, SlowEmbedder, threading.Event]
) -> None:
    slow, embedder, gate = gated
    await start_bot(engine=slow)
    interaction = await fake.send_interaction("rebuild", user_id=world.bob["id"])
    await asyncio.to_thread(embedder.waiting.wait, 5)
    fake.expired_tokens.add(interaction.token)  # as Discord does 15 minutes after the command
    gate.set()

    post = await fake.wait_for_request(
        "POST", rf"/channels/{world.channel_a}/messages", lambda r: "Rebuilt" in (r.json or {}).get("content", "")
    )

    assert post.json["content"].startswith("Rebuilt: 3 articles")
    assert post.json["allowed_mentions"] == {"parse": []}
