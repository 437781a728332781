"""Sharding: the settings, the fake routing each server to its shard, and bots on different shards over one PostgreSQL.

Most bots here run in this process (two sharded clients on one fake, two engines on one PostgreSQL database),
because the fake embedder cannot be handed to ``python -m bot``; the slow test at the end runs two real processes.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from pydantic import ValidationError

from bot.__main__ import settings_error
from bot.client import NewsQuoteBot, ShardedNewsQuoteBot
from bot.settings import BotSettings
from index import Engine, Settings
from tests.bot.conftest import StartBot
from tests.bot.support import (
    BRIDGE,
    BRIDGE_ANSWER,
    BRIDGE_QUESTION,
    BRIDGE_TITLE,
    MANAGE_GUILD,
    TOKEN,
    World,
    add_text,
    callback,
    final_edit,
    followups,
    make_world,
    quoted,
    webhook_path,
)
from tests.bot.test_startup import clean_env
from tests.conftest import fresh_database
from tests.fakes.discord_server import (
    FakeDiscord,
    FakeInteraction,
    Payload,
    RecordedRequest,
    make_member,
    make_role,
    new_id,
    patch_discord,
    shard_of,
)
from tests.fakes.embedder import HashEmbedder

SHARDS = 2
NEW_ANSWER = "Mayor Linda Park now says the harbour bridge will open to traffic in September."


def guild_id_on(shard: int, shard_count: int = SHARDS) -> str:
    """A fresh server id owned by ``shard``."""
    stamp = int(new_id()) >> 22
    return str(((stamp - stamp % shard_count + shard) << 22) | 1)


@pytest.fixture
def shared_settings(postgres_server: str, tmp_path: Path) -> Settings:
    """One empty PostgreSQL database, as every process of a sharded bot would share."""
    url = fresh_database(postgres_server)
    return Settings(_env_file=None, data_dir=tmp_path / "data", database_url=url)  # type: ignore[call-arg]


@pytest.fixture
def engines(shared_settings: Settings) -> Iterator[tuple[Engine, Engine]]:
    """Two engines on the one database: what two bot processes hold."""
    first, second = Engine(shared_settings, embedder=HashEmbedder()), Engine(shared_settings, embedder=HashEmbedder())
    yield first, second
    first.close()
    second.close()


@pytest_asyncio.fixture
async def world(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    """The two servers, A on shard 0 and B on shard 1."""
    world = make_world((guild_id_on(0), guild_id_on(1)))
    async with world.fake:
        patch_discord(monkeypatch, world.fake)
        yield world
    assert world.fake.unknown == []
    assert world.fake.errors == []


def on_shards(*shard_ids: int) -> dict[str, Any]:
    return {"shard_count": SHARDS, "shard_ids": list(shard_ids)}


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "0,2"}, "DISCORD_SHARD_IDS: Value error, shard 2 does not"),
        ({"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "-1"}, "DISCORD_SHARD_IDS: Value error, shard -1 does not"),
        ({"DISCORD_SHARD_IDS": "0"}, "DISCORD_SHARD_IDS: Value error, set DISCORD_SHARD_COUNT too"),
        ({"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "1,1"}, "DISCORD_SHARD_IDS: Value error, a shard is named"),
        ({"DISCORD_SHARD_COUNT": "0"}, "DISCORD_SHARD_COUNT: Input should be greater than or equal to 1"),
    ],
)
def test_bad_shard_settings_are_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], complaint: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as raised:
        BotSettings(_env_file=None, token=TOKEN)  # type: ignore[call-arg]

    message = settings_error(raised.value, "DISCORD_")
    assert message.startswith(f"error: invalid setting {complaint}")
    assert "\n" not in message


@pytest.mark.parametrize(("ids", "expected"), [("0, 1", [0, 1]), ("[1]", [1]), ("", None)])
def test_shard_ids_are_read_like_role_ids(
    monkeypatch: pytest.MonkeyPatch, ids: str, expected: list[int] | None
) -> None:
    monkeypatch.setenv("DISCORD_SHARD_COUNT", "2")
    monkeypatch.setenv("DISCORD_SHARD_IDS", ids)

    assert BotSettings(_env_file=None, token=TOKEN).shard_ids == expected  # type: ignore[call-arg]


async def test_without_shard_settings_the_bot_is_not_sharded(fake: FakeDiscord, start_bot: StartBot) -> None:
    bot = await start_bot()

    assert not isinstance(bot, ShardedNewsQuoteBot)
    assert "shard" not in fake.identifies[-1]


async def test_each_shard_gets_only_the_servers_it_owns_and_their_events(
    world: World, start_bot: StartBot, engines: tuple[Engine, Engine]
) -> None:
    first = await start_bot(engines[0], **on_shards(0))
    second = await start_bot(engines[1], **on_shards(1))
    seen: dict[int, list[str]] = {0: [], 1: []}
    for shard, bot in enumerate((first, second)):

        async def record(interaction: Any, shard: int = shard) -> None:
            seen[shard].append(str(interaction.guild_id))

        bot.add_listener(record, "on_interaction")

    await callback(world.fake, await world.fake.send_interaction("stats", channel_id=world.channel_a))
    await callback(world.fake, await world.fake.send_interaction("stats", channel_id=world.channel_b))

    assert isinstance(first, ShardedNewsQuoteBot)
    assert [g.id for g in first.guilds] == [int(world.guild_a["id"])]
    assert [g.id for g in second.guilds] == [int(world.guild_b["id"])]
    assert sorted(i["shard"] for i in world.fake.identifies) == [[0, 2], [1, 2]]
    assert seen == {0: [world.guild_a["id"]], 1: [world.guild_b["id"]]}
    assert shard_of(world.guild_a["id"], SHARDS) == 0


async def ask(fake: FakeDiscord, channel_id: str) -> tuple[str, float]:
    """Ask the bridge question in a channel; return the first quoted text and how long the answer took."""
    started = time.monotonic()
    interaction = await fake.send_interaction("ask", {"question": BRIDGE_QUESTION}, channel_id=channel_id)
    [reply] = await followups(fake, interaction)
    embeds = reply.json.get("embeds") or []
    text = quoted(embeds[0]["description"])[0] if embeds and embeds[0].get("description") else reply.json["content"]
    return text, time.monotonic() - started


async def reshard(bots: list[NewsQuoteBot], start_bot: StartBot, engines: tuple[Engine, Engine]) -> NewsQuoteBot:
    """Stop every process, then start them again with the shard ids swapped; return the one now on shard 0."""
    for bot in bots:
        await bot.close()
    on_zero = await start_bot(engines[1], **on_shards(0))
    await start_bot(engines[0], **on_shards(1))
    return on_zero


async def test_an_article_added_through_one_process_is_quoted_by_the_other_after_a_reshard(
    world: World, start_bot: StartBot, engines: tuple[Engine, Engine]
) -> None:
    bots = [await start_bot(engines[0], **on_shards(0)), await start_bot(engines[1], **on_shards(1))]
    added = await add_text(world.fake, BRIDGE, BRIDGE_TITLE)
    await final_edit(world.fake, added, BRIDGE_TITLE)

    await reshard(bots, start_bot, engines)
    text, took = await ask(world.fake, world.channel_a)

    assert BRIDGE_ANSWER in text
    assert took < 2.0


async def test_remove_and_rebuild_in_one_process_never_leave_the_other_quoting_stale_text(
    world: World, start_bot: StartBot, engines: tuple[Engine, Engine]
) -> None:
    bots = [await start_bot(engines[0], **on_shards(0)), await start_bot(engines[1], **on_shards(1))]
    old = engines[0].add_text(BRIDGE, world.collection_a, title=BRIDGE_TITLE).article
    await reshard(bots, start_bot, engines)  # guild A is now served through engines[1]
    assert BRIDGE_ANSWER in (await ask(world.fake, world.channel_a))[0]

    engines[0].remove(old.id, world.collection_a)
    after_remove, _ = await ask(world.fake, world.channel_a)
    engines[0].add_text(BRIDGE.replace(BRIDGE_ANSWER, NEW_ANSWER), world.collection_a, title=BRIDGE_TITLE)
    engines[0].rebuild(world.collection_a)
    after_rebuild, took = await ask(world.fake, world.channel_a)

    assert BRIDGE_ANSWER not in after_remove
    assert NEW_ANSWER in after_rebuild
    assert BRIDGE_ANSWER not in after_rebuild
    assert took < 2.0


async def test_gateway_bot_recommends_the_configured_shard_count(world: World) -> None:
    world.fake.shard_count = 3
    async with asyncio.timeout(5):
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{world.fake.base_url}/gateway/bot", headers={"Authorization": f"Bot {TOKEN}"}) as response,
        ):
            body = await response.json(content_type=None)

    assert body["shards"] == 3
    assert body["url"] == world.fake.gateway_url
    assert body["session_start_limit"]["max_concurrency"] == 1


# --- two real processes ---------------------------------------------------------------------------


class BotProcesses:
    """``python -m bot`` twice, one shard each, on one PostgreSQL, against the fake; their logs in files."""

    def __init__(self, fake: FakeDiscord, database_url: str, directory: Path) -> None:
        self.fake, self.database_url, self.directory = fake, database_url, directory
        self.running: list[tuple[asyncio.subprocess.Process, Path]] = []

    async def start(self, shard_ids: tuple[int, int]) -> None:
        """Start the first process on shard ``shard_ids[0]`` and the second on ``shard_ids[1]``; wait for both."""
        identified = len(self.fake.identifies)
        for n, shard in enumerate(shard_ids):
            env = clean_env(
                DISCORD_TOKEN=TOKEN,
                DISCORD_API_BASE_URL=self.fake.base_url,
                DISCORD_GATEWAY_URL=self.fake.gateway_url,
                DISCORD_SHARD_COUNT=str(SHARDS),
                DISCORD_SHARD_IDS=str(shard),
                NEWSQUOTE_DATABASE_URL=self.database_url,
            )
            log = self.directory / f"process-{n}-{len(self.fake.identifies)}-{len(self.running)}.log"
            with log.open("wb") as out:
                process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bot", cwd=self.directory, env=env, stdout=out, stderr=out
                )
            self.running.append((process, log))
        await self.fake.wait_until(lambda: len(self.fake.identifies) >= identified + len(shard_ids), timeout=90)
        for shard in shard_ids:
            await self.fake.wait_shard_ready(shard)

    async def stop(self) -> None:
        """SIGTERM each running process; each must exit 0 having logged its clean stop."""
        stopping, self.running = self.running, []
        for process, _ in stopping:
            process.send_signal(signal.SIGTERM)
        for process, log in stopping:
            code = await asyncio.wait_for(process.wait(), 30)
            text = log.read_text(errors="replace")
            assert code == 0, text
            assert "Traceback" not in text
            assert text.strip().splitlines()[-1].endswith("Stopped")

    def kill(self) -> None:
        for process, _ in self.running:
            if process.returncode is None:
                process.kill()


async def answer(fake: FakeDiscord, channel_id: str, question: str, user: Payload, wait: float = 10) -> str:
    """Ask in a channel as ``user``; return all the answer showed, as read (its quotes' markdown undone)."""
    interaction = await fake.send_interaction("ask", {"question": question}, channel_id=channel_id, user_id=user["id"])
    reply = await fake.wait_for_request("POST", webhook_path(fake, interaction), timeout=wait)
    shown = [e.get("description") or "" for e in reply.json.get("embeds") or []] + [reply.json.get("content") or ""]
    return "\n".join(quoted(text)[0] if text.startswith(">>> ") else text for text in shown)


async def run_command(fake: FakeDiscord, interaction: FakeInteraction, done: str, wait: float = 10) -> RecordedRequest:
    """Wait for the command's final edit, which says ``done``."""
    return await fake.wait_for_request(
        "PATCH",
        webhook_path(fake, interaction, "/messages/@original"),
        lambda r: done in ((r.json or {}).get("content") or ""),
        timeout=wait,
    )


async def add_and_replace_in(fake: FakeDiscord, world: World, channel_id: str) -> str:
    """In one server: add the bridge article, ask about it, then remove it, add it changed and rebuild."""
    added = await add_text(fake, BRIDGE, BRIDGE_TITLE, user_id=world.alice["id"], channel_id=channel_id)
    await run_command(fake, added, BRIDGE_TITLE, wait=120)  # the process's first command waits for its model
    quoted_before = await answer(fake, channel_id, BRIDGE_QUESTION, world.alice)
    removed = await fake.send_interaction(
        "remove", {"article": "harbour bridge"}, user_id=world.bob["id"], channel_id=channel_id
    )
    await run_command(fake, removed, "Removed")
    changed = BRIDGE.replace(BRIDGE_ANSWER, NEW_ANSWER)
    await run_command(
        fake, await add_text(fake, changed, BRIDGE_TITLE, user_id=world.bob["id"], channel_id=channel_id), BRIDGE_TITLE
    )
    rebuild = await fake.send_interaction("rebuild", user_id=world.bob["id"], channel_id=channel_id)
    await run_command(fake, rebuild, "Rebuilt", wait=60)
    return quoted_before


@pytest.mark.slow
async def test_two_bot_processes_on_one_postgresql_serve_each_server_the_same_articles(
    world: World, postgres_server: str, tmp_path: Path
) -> None:
    """Issue 8: the real ``python -m bot`` (its packaged model) twice, one shard each, over one database.

    A server's collection is its own, and only its shard's process serves it; so the other process serves the
    same server after a reshard (both stopped, restarted with the shard ids swapped). Before it, the first process
    adds an article in server A; the second adds one in server B, then removes it and rebuilds. After it, each
    server is asked through the process that did not write its articles.
    """
    fake, a, b = world.fake, world.channel_a, world.channel_b
    managers = make_role("Managers", MANAGE_GUILD)  # bob may /remove and /rebuild in B too
    world.guild_b["roles"].append(managers)
    world.guild_b["members"].append(make_member(world.bob, [managers["id"]]))
    processes = BotProcesses(fake, fresh_database(postgres_server), tmp_path)
    try:
        await processes.start((0, 1))  # the first process serves A, the second B
        added_in_a = await add_text(fake, BRIDGE, BRIDGE_TITLE, user_id=world.alice["id"], channel_id=a)
        _, quoted_in_b = await asyncio.gather(
            run_command(fake, added_in_a, BRIDGE_TITLE, wait=120), add_and_replace_in(fake, world, b)
        )
        await processes.stop()

        await processes.start((1, 0))  # now the second serves A and the first B
        await answer(fake, a, "How much did the construction cost?", world.carol, wait=120)  # its model loaded
        started = time.monotonic()
        read_in_a = await answer(fake, a, BRIDGE_QUESTION, world.alice)
        took = time.monotonic() - started
        read_in_b = await answer(fake, b, BRIDGE_QUESTION, world.alice, wait=120)
        await processes.stop()
    finally:
        processes.kill()

    assert BRIDGE_ANSWER in quoted_in_b
    assert BRIDGE_ANSWER in read_in_a
    assert took < 2.0
    assert NEW_ANSWER in read_in_b
    assert "open to traffic in May" not in read_in_b
    assert sorted(i["shard"] for i in fake.identifies) == [[0, 2], [0, 2], [1, 2], [1, 2]]
