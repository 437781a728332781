"""Stopping cleanly (what SIGTERM and Ctrl-C do): work in flight answers or is cancelled, new work is turned away."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from bot.client import RESTARTING
from index import Engine, Settings
from tests.bot.conftest import StartBot
from tests.bot.support import BRIDGE, BRIDGE_QUESTION, BRIDGE_TITLE, SlowEmbedder, World, followups, told_privately

Gated = tuple[Engine, SlowEmbedder, threading.Event]


@pytest.fixture
def gated(world: World, settings: Settings) -> Iterator[Gated]:
    """An engine holding the bridge story whose embedder then blocks until the test opens the gate."""
    gate = threading.Event()
    embedder = SlowEmbedder()
    engine = Engine(settings, embedder=embedder)
    engine.add_text(BRIDGE, world.collection_a, title=BRIDGE_TITLE)
    embedder.gate = gate
    yield engine, embedder, gate
    gate.set()
    engine.close()


async def test_a_question_in_flight_is_answered_before_the_bot_disconnects(
    world: World, start_bot: StartBot, gated: Gated
) -> None:
    engine, embedder, gate = gated
    bot = await start_bot(engine=engine)
    asked = await world.fake.send_interaction("ask", {"question": BRIDGE_QUESTION})
    await asyncio.to_thread(embedder.waiting.wait, 5)

    stopping = asyncio.create_task(bot.stop(grace=10))
    await world.fake.wait_until(lambda: bot.stopping)
    late = await world.fake.send_interaction("ask", {"question": BRIDGE_QUESTION})
    told_late = await told_privately(world.fake, late)
    gate.set()
    await asyncio.wait_for(stopping, 5)

    [answer] = await followups(world.fake, asked)
    assert "Linda Park" in str(answer.json)
    assert told_late == RESTARTING
    assert bot.is_closed()


async def test_work_outlasting_the_grace_period_is_cancelled(world: World, start_bot: StartBot, gated: Gated) -> None:
    engine, embedder, _gate = gated
    bot = await start_bot(engine=engine)
    asked = await world.fake.send_interaction("ask", {"question": BRIDGE_QUESTION})
    await asyncio.to_thread(embedder.waiting.wait, 5)

    began = time.perf_counter()
    await asyncio.wait_for(bot.stop(grace=0.2), 5)

    assert time.perf_counter() - began < 2
    assert bot.is_closed()
    assert asked.followups == []


async def test_mentions_are_ignored_while_stopping(world: World, start_bot: StartBot, gated: Gated) -> None:
    engine, embedder, gate = gated
    bot = await start_bot(engine=engine)
    asked = await world.fake.send_interaction("ask", {"question": BRIDGE_QUESTION})
    await asyncio.to_thread(embedder.waiting.wait, 5)
    stopping = asyncio.create_task(bot.stop(grace=10))
    await world.fake.wait_until(lambda: bot.stopping)
    before = len(world.fake.requests)

    await world.fake.send_message_create(f"<@{world.fake.bot_user['id']}> {BRIDGE_QUESTION}")
    await asyncio.sleep(0.2)
    gate.set()
    await asyncio.wait_for(stopping, 5)

    assert not [r for r in world.fake.requests[before:] if "/channels/" in r.path]
    assert len(asked.followups) == 1
