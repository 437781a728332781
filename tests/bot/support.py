"""Helpers for the bot tests: the fake world, Discord's rendering rules and limits, reading the fake's records."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bot import render
from bot.checks import collection_for
from index.models import Excerpt
from tests.fakes.discord_server import (
    EPHEMERAL,
    FakeDiscord,
    FakeInteraction,
    Payload,
    RecordedRequest,
    make_channel,
    make_guild,
    make_member,
    make_role,
    make_user,
)
from tests.fakes.embedder import HashEmbedder

TOKEN = "fake-token"
MANAGE_GUILD = 1 << 5

BRIDGE_TITLE = "Harbour bridge to open in May"
BRIDGE_URL = "https://news.example/bridge"
BRIDGE = (
    "The city council met on Tuesday evening to discuss the harbour project. "
    "Mayor Linda Park announced that the new harbour bridge will open to traffic in May. "
    "Construction costs reached forty million dollars, twice the original estimate. "
    "Critics said the project had been delayed by two years because of flooding."
)
BRIDGE_ANSWER = "Mayor Linda Park announced that the new harbour bridge will open to traffic in May."
BRIDGE_QUESTION = "When will the harbour bridge open?"

ORCHARD_TITLE = "Apple harvest breaks records"
ORCHARD = (
    "Farmers in the valley picked more apples this autumn than in any year on record. "
    "A warm spring and steady rain helped the orchards, growers said on Friday. "
    "Prices at the market fell by a third as the fruit piled up in warehouses."
)


@dataclass
class World:
    """Two servers: A with a plain member, a Manage Server member and a member holding the admin role; B apart."""

    fake: FakeDiscord
    guild_a: Payload
    guild_b: Payload
    alice: Payload  # plain member of A (and of B)
    bob: Payload  # Manage Server in A, through a role
    carol: Payload  # holds the role named in DISCORD_ADMIN_ROLE_IDS
    admin_role_id: int

    @property
    def channel_a(self) -> str:
        return str(self.guild_a["channels"][0]["id"])

    @property
    def channel_b(self) -> str:
        return str(self.guild_b["channels"][0]["id"])

    @property
    def collection_a(self) -> str:
        return collection_for(int(self.guild_a['id']))

    @property
    def collection_b(self) -> str:
        return collection_for(int(self.guild_b['id']))


def make_world(guild_ids: tuple[str | None, str | None] = (None, None)) -> World:
    """Build the two servers, with the given ids where not None (to place them on chosen shards)."""
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    managers = make_role("Managers", MANAGE_GUILD)
    admins = make_role("Quote admins", 0)
    guild_a = make_guild(
        "Newsroom",
        id=guild_ids[0],
        members=[make_member(alice), make_member(bob, [managers["id"]]), make_member(carol, [admins["id"]])],
        roles=[managers, admins],
        channels=[make_channel("newsroom")],
    )
    guild_b = make_guild(
        "Orchard club", id=guild_ids[1], members=[make_member(alice)], channels=[make_channel("orchards")]
    )
    fake = FakeDiscord(token=TOKEN, guilds=[guild_a, guild_b])
    return World(fake, guild_a, guild_b, alice, bob, carol, int(admins["id"]))


class SlowEmbedder(HashEmbedder):
    """The fake embedder, but each ``encode`` sleeps, or waits for ``gate`` when one is given."""

    def __init__(self, delay: float = 0.0, gate: threading.Event | None = None) -> None:
        super().__init__()
        self.delay = delay
        self.gate = gate
        self.waiting = threading.Event()  # set once an encode is blocked on the gate

    def encode(self, texts: Sequence[str], batch_size: int = 16) -> np.ndarray:
        if self.gate is not None:
            self.waiting.set()
            if not self.gate.wait(10):
                raise TimeoutError("the test never opened the gate")
        time.sleep(self.delay)
        return super().encode(texts, batch_size)


def make_excerpt(
    text: str,
    *,
    focus: tuple[int, int] | None = None,
    start: int = 0,
    article_id: int = 1,
    title: str = "An article",
    url: str | None = None,
    article_chars: int | None = None,
    weak: bool = False,
) -> Excerpt:
    """Build an excerpt by hand; ``focus`` is relative to ``text`` (default: all of it)."""
    a, b = focus or (0, len(text))
    return Excerpt(
        text=text,
        start=start,
        end=start + len(text),
        article_id=article_id,
        title=title,
        url=url,
        score=1.0,
        relevance=1.0,
        focus_start=start + a,
        focus_end=start + b,
        article_chars=article_chars or start + len(text),
        weak=weak,
    )


# --- what the bot sent -------------------------------------------------------------------------


def webhook_path(fake: FakeDiscord, interaction: FakeInteraction, suffix: str = "") -> str:
    return rf"/webhooks/{fake.application_id}/{interaction.token}{suffix}"


async def callback(fake: FakeDiscord, interaction: FakeInteraction) -> RecordedRequest:
    """Wait for the interaction's initial response."""
    return await fake.wait_for_request("POST", rf"/interactions/{interaction.id}/{interaction.token}/callback")


async def followups(fake: FakeDiscord, interaction: FakeInteraction, count: int = 1) -> list[RecordedRequest]:
    """Wait for ``count`` followup messages and return them in order."""
    path = webhook_path(fake, interaction)
    await fake.wait_until(lambda: len([r for r in fake.requests if r.method == "POST" and r.path == path]) >= count)
    return [r for r in fake.requests if r.method == "POST" and r.path == path]


async def add_text(
    fake: FakeDiscord,
    content: str,
    title: str = "",
    *,
    user_id: int | str | None = None,
    channel_id: int | str | None = None,
) -> FakeInteraction:
    """Run ``/add text`` as a user does: the command opens a form, the user pastes and submits it."""
    opened = await fake.send_interaction("add text", user_id=user_id, channel_id=channel_id)
    await fake.wait_until(lambda: bool(opened.callbacks))
    if opened.callbacks[0]["type"] != 9:  # refused before the form (cooldown, direct message): nothing to fill in
        return opened
    return await fake.submit_modal(opened, {"Title (optional)": title, "Article text": content}, user_id=user_id)


async def final_edit(fake: FakeDiscord, interaction: FakeInteraction, contains: str) -> RecordedRequest:
    """Wait for an edit of the original response whose content contains ``contains``."""
    return await fake.wait_for_request(
        "PATCH",
        webhook_path(fake, interaction, "/messages/@original"),
        lambda r: contains in ((r.json or {}).get("content") or ""),
    )


def private_text(interaction: FakeInteraction) -> str | None:
    """Return what the user alone was told: an ephemeral response or followup."""
    if interaction.callbacks and interaction.callbacks[0]["type"] == 4:
        data = interaction.callbacks[0]["data"]
        if int(data.get("flags") or 0) & EPHEMERAL:
            return str(data.get("content"))
    for message in interaction.followups:
        if message["flags"] & EPHEMERAL:
            return str(message["content"])
    return None


async def told_privately(fake: FakeDiscord, interaction: FakeInteraction) -> str:
    """Wait until the user was told something privately, and return it."""
    await fake.wait_until(lambda: private_text(interaction) is not None)
    text = private_text(interaction)
    assert text is not None
    return text


def channel_posts(fake: FakeDiscord, channel_id: str, since: int = 0) -> list[RecordedRequest]:
    return [r for r in fake.requests[since:] if r.method == "POST" and r.path == f"/channels/{channel_id}/messages"]


async def wait_for_posts(fake: FakeDiscord, channel_id: str, count: int = 1, since: int = 0) -> list[RecordedRequest]:
    await fake.wait_until(lambda: len(channel_posts(fake, channel_id, since)) >= count)
    return channel_posts(fake, channel_id, since)


# --- Discord's rules --------------------------------------------------------------------------


def embed_length(embed: Payload) -> int:
    """Count an embed's characters the way Discord does for its 6000 limit."""
    size = len(embed.get("title") or "") + len(embed.get("description") or "")
    size += sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields") or [])
    size += len((embed.get("footer") or {}).get("text") or "") + len((embed.get("author") or {}).get("name") or "")
    return size


def assert_fits(message: Payload) -> None:
    """Assert a message body keeps every Discord limit."""
    assert len(message.get("content") or "") <= render.CONTENT_LIMIT
    embeds = message.get("embeds") or []
    assert len(embeds) <= render.EMBEDS_LIMIT
    assert sum(embed_length(e) for e in embeds) <= render.EMBED_LIMIT
    for embed in embeds:
        assert len(embed.get("title") or "") <= render.TITLE_LIMIT
        assert len(embed.get("description") or "") <= render.DESCRIPTION_LIMIT
        assert len((embed.get("footer") or {}).get("text") or "") <= render.FOOTER_LIMIT
        fields = embed.get("fields") or []
        assert len(fields) <= render.FIELDS_LIMIT
        for f in fields:
            assert len(f["name"]) <= render.FIELD_NAME_LIMIT
            assert len(f["value"]) <= render.FIELD_VALUE_LIMIT


def pings_nobody(body: Any) -> bool:
    """Return whether a message body's ``allowed_mentions`` lets no mention notify anyone."""
    allowed = (body or {}).get("allowed_mentions")
    if allowed is None:  # Discord then parses every mention in the content
        return False
    return (
        allowed.get("parse") == []
        and not allowed.get("users")
        and not allowed.get("roles")
        and (not allowed.get("replied_user"))
    )


def read_markdown(text: str) -> tuple[str, list[str]]:
    """Render Discord markdown the way a reader sees it: the plain text and the bold runs.

    Only what ``render`` emits is modelled: backslash escapes and ``**bold**``.
    """
    plain: list[str] = []
    bold: list[str] = []
    start: int | None = None
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and not text[i + 1].isalnum() and not text[i + 1].isspace():
            plain.append(text[i + 1])
            i += 2
        elif text.startswith("**", i):
            if start is None:
                start = len("".join(plain))
            else:
                bold.append("".join(plain)[start:])
                start = None
            i += 2
        else:
            plain.append(text[i])
            i += 1
    return "".join(plain), bold


def quoted(description: str) -> tuple[str, list[str]]:
    """Read a ``>>> `` block quote: its plain text and bold runs."""
    assert description.startswith(">>> ")
    return read_markdown(description.removeprefix(">>> "))
