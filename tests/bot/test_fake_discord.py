"""Drive the real discord.py client against the fake Discord server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import discord
import pytest
import pytest_asyncio
from discord import app_commands

from tests.fakes.discord_server import FakeDiscord, RecordedRequest, patch_discord

TOKEN = "fake-token"


class PingClient(discord.Client):
    """A minimal client with a command tree, like the bot but without its engine."""

    def __init__(self, *, intents: discord.Intents | None = None) -> None:
        super().__init__(intents=intents or discord.Intents.default(), guild_ready_timeout=0.01)
        self.tree = app_commands.CommandTree(self)
        self.received: list[discord.Message] = []

        @self.tree.command()
        async def ping(interaction: discord.Interaction) -> None:
            """Answer pong."""
            await interaction.response.send_message("pong")

        @self.tree.command()
        async def slow(interaction: discord.Interaction) -> None:
            """Defer, then answer with a followup."""
            await interaction.response.defer(thinking=True)
            await asyncio.sleep(0)
            await interaction.followup.send("done")

        @self.tree.command()
        async def size(interaction: discord.Interaction, file: discord.Attachment) -> None:
            """Answer with the size of the downloaded attachment."""
            data = await file.read()
            await interaction.response.send_message(f"{file.filename}: {len(data)} bytes", ephemeral=True)

    async def on_message(self, message: discord.Message) -> None:
        self.received.append(message)


@pytest_asyncio.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    """A started fake, with discord.py pointed at it; fails the test if an unknown route was hit."""
    async with FakeDiscord(token=TOKEN) as server:
        patch_discord(monkeypatch, server)
        yield server
    assert server.unknown == []
    assert server.errors == []


RunClient = Callable[[PingClient], Awaitable[PingClient]]


@pytest_asyncio.fixture
async def run_client() -> AsyncIterator[RunClient]:
    """Log clients in, connect them until ready, and close them (and their connect task) afterwards."""
    clients: list[PingClient] = []
    tasks: list[asyncio.Task[None]] = []

    async def start(client: PingClient) -> PingClient:
        clients.append(client)  # before login, so a failed login still gets its HTTP session closed
        await client.login(TOKEN)
        tasks.append(asyncio.create_task(client.connect()))
        await asyncio.wait_for(client.wait_until_ready(), 5)
        return client

    yield start
    for client in clients:
        await client.close()
    # connect() returns once its client is closed; awaiting it proves no task is left behind.
    await asyncio.wait_for(asyncio.gather(*tasks), 5)


@asynccontextmanager
async def closing(client: discord.Client) -> AsyncIterator[discord.Client]:
    try:
        yield client
    finally:
        await client.close()


def callback_of(fake: FakeDiscord, interaction_id: str, token: str) -> Awaitable[RecordedRequest]:
    return fake.wait_for_request("POST", f"/interactions/{interaction_id}/{token}/callback")


@pytest.mark.asyncio
async def test_client_logs_in_and_receives_the_guild(fake: FakeDiscord, run_client: RunClient) -> None:
    client = await run_client(PingClient())

    assert client.user is not None
    assert str(client.user.id) == fake.bot_user["id"]
    guild = client.get_guild(int(fake.guild["id"]))
    assert guild is not None
    assert guild.name == fake.guild["name"]
    assert [c.name for c in guild.text_channels] == ["general"]
    assert fake.identify_count == 1
    assert fake.identifies[0]["intents"] == discord.Intents.default().value
    assert fake.gateway_queries[0] == {"v": "10", "encoding": "json", "compress": "zlib-stream"}


@pytest.mark.asyncio
async def test_wrong_token_raises_login_failure(fake: FakeDiscord) -> None:
    async with closing(PingClient()) as client:
        with pytest.raises(discord.LoginFailure):
            await client.login("not-the-token")
    assert fake.requests[-1].path == "/users/@me"


@pytest.mark.asyncio
async def test_tree_sync_records_commands(fake: FakeDiscord, run_client: RunClient) -> None:
    client = await run_client(PingClient())
    guild = discord.Object(int(fake.guild["id"]))

    synced = await client.tree.sync()
    client.tree.copy_global_to(guild=guild)
    guild_synced = await client.tree.sync(guild=guild)

    assert {c.name for c in synced} == {"ping", "slow", "size"}
    assert {c["name"] for c in fake.global_commands} == {"ping", "slow", "size"}
    assert all(c.guild_id == guild.id for c in guild_synced)
    assert {c["name"] for c in fake.guild_commands[fake.guild["id"]]} == {"ping", "slow", "size"}


@pytest.mark.asyncio
async def test_ping_answers_pong(fake: FakeDiscord, run_client: RunClient) -> None:
    await run_client(PingClient())

    interaction = await fake.send_interaction("ping")
    request = await callback_of(fake, interaction.id, interaction.token)

    assert request.json["type"] == 4
    assert request.json["data"]["content"] == "pong"
    assert interaction.original is not None
    assert interaction.original["content"] == "pong"


@pytest.mark.asyncio
async def test_deferred_command_sends_a_followup(fake: FakeDiscord, run_client: RunClient) -> None:
    await run_client(PingClient())

    interaction = await fake.send_interaction("slow")
    followup = await fake.wait_for_request("POST", rf"/webhooks/{fake.application_id}/{interaction.token}")

    assert interaction.response_type == 5
    assert followup.json["content"] == "done"
    assert followup.query["wait"] == "1"


@pytest.mark.asyncio
async def test_attachment_option_is_downloaded_from_the_fake(fake: FakeDiscord, run_client: RunClient) -> None:
    client = await run_client(PingClient())
    await client.tree.sync()
    attachment = fake.add_attachment("article.txt", b"hello world", "text/plain")

    interaction = await fake.send_interaction("size", {"file": attachment})
    request = await callback_of(fake, interaction.id, interaction.token)

    assert request.json["data"]["content"] == "article.txt: 11 bytes"
    assert request.json["data"]["flags"] == 64


@pytest.mark.asyncio
@pytest.mark.parametrize("mentioned", [False, True])
async def test_message_content_is_blanked_without_intent_unless_mentioned(
    fake: FakeDiscord, run_client: RunClient, mentioned: bool
) -> None:
    client = await run_client(PingClient())
    text = f"<@{fake.bot_user['id']}> hello" if mentioned else "hello"

    await fake.send_message_create(text)
    await fake.wait_until(lambda: len(client.received) == 1)

    assert client.received[0].content == (text if mentioned else "")


@pytest.mark.asyncio
@pytest.mark.parametrize("reconnect_op", [False, True], ids=["close-4000", "op-7"])
async def test_dropped_gateway_is_resumed_not_reidentified(
    fake: FakeDiscord, run_client: RunClient, reconnect_op: bool
) -> None:
    await run_client(PingClient())

    await fake.drop_gateway(4000, reconnect_op=reconnect_op)
    await fake.wait_until(lambda: fake.resume_count == 1, timeout=5)
    interaction = await fake.send_interaction("ping")
    request = await callback_of(fake, interaction.id, interaction.token)

    assert fake.identify_count == 1
    assert fake.resumes[0]["session_id"] == fake.session_id
    assert request.json["data"]["content"] == "pong"
