"""Fixtures: the fake Discord with two servers, and the real bot started against it on the fake embedder."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio

from bot.client import NewsQuoteBot, create_bot
from bot.settings import BotSettings
from index import Engine
from tests.bot.support import TOKEN, World, make_world
from tests.fakes.discord_server import FakeDiscord, patch_discord

StartBot = Callable[..., Awaitable[NewsQuoteBot]]


@pytest_asyncio.fixture
async def world(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    """Two servers on a started fake; fails the test if the bot hit an unknown route or broke the fake."""
    world = make_world()
    async with world.fake:
        patch_discord(monkeypatch, world.fake)  # so the bot's own endpoint settings are undone afterwards
        yield world
    assert world.fake.unknown == []
    assert world.fake.errors == []


@pytest.fixture
def fake(world: World) -> FakeDiscord:
    return world.fake


@pytest_asyncio.fixture
async def start_bot(world: World, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[StartBot]:
    """Start bots the way ``python -m bot`` does (login, then connect), and close them afterwards."""
    for name in list(os.environ):
        if name.startswith("DISCORD_"):
            monkeypatch.delenv(name)
    running: list[tuple[NewsQuoteBot, asyncio.Task[None]]] = []

    async def start(engine: Engine = engine, **overrides: Any) -> NewsQuoteBot:
        values: dict[str, Any] = {
            "token": TOKEN,
            "api_base_url": world.fake.base_url,
            "gateway_url": world.fake.gateway_url,
            "admin_role_ids": [world.admin_role_id],
            "ask_cooldown_seconds": 0,
            "add_cooldown_seconds": 0,
            "progress_interval_seconds": 0.01,
        }
        settings = BotSettings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]
        bot = create_bot(engine, settings, guild_ready_timeout=0.01)
        await bot.login(settings.token.get_secret_value())
        task = asyncio.create_task(bot.connect())
        running.append((bot, task))
        await asyncio.wait_for(bot.wait_until_ready(), 5)
        if settings.shard_ids is None:
            await world.fake.wait_ready()
        for shard_id in settings.shard_ids or ():
            await world.fake.wait_shard_ready(shard_id)
        return bot

    yield start
    for bot, task in running:
        await bot.close()
        await asyncio.wait_for(task, 5)


@pytest_asyncio.fixture
async def bot(start_bot: StartBot) -> NewsQuoteBot:
    return await start_bot()
