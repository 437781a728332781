"""A small fake Discord (REST + gateway) that the real discord.py client can talk to offline.

Start a :class:`FakeDiscord`, point discord.py at it (:func:`patch_discord`), drive the bot with
``send_interaction`` / ``send_message_create`` and await the REST calls with ``wait_for_request``.
REST paths are recorded relative to ``/api/v10``; every snowflake in a payload is a string.
"""

# Test helpers take a ``timeout`` argument so a test reads as one call; ruff would prefer asyncio.timeout.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import discord
import pytest
import yarl
from aiohttp import web

Payload = dict[str, Any]
Handler = Callable[..., Awaitable[web.StreamResponse]]

API_PREFIX = "/api/v10"
DISCORD_EPOCH_MS = 1_420_070_400_000
MESSAGE_CONTENT_INTENT = 1 << 15
EPHEMERAL, LOADING = 1 << 6, 1 << 7  # message flags
HAS_THREAD = 1 << 5  # message flag: a thread was started on it
THREAD_TYPES = (10, 11, 12)  # announcement, public and private threads
ADMINISTRATOR = 1 << 3
ALL_PERMISSIONS = (1 << 51) - 1
# @everyone on a fresh server: add reactions, view channel, send messages, embed links, attach files,
# read message history, use application commands.
DEFAULT_EVERYONE_PERMISSIONS = sum(1 << bit for bit in (6, 10, 11, 14, 15, 16, 31))

_counter = itertools.count()


def new_id() -> str:
    """Return a fresh snowflake whose timestamp is now, so ``created_at`` stays plausible."""
    return str(((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) | (next(_counter) & 0x3FFFFF))


def now_iso() -> str:
    """Return the current UTC time in ISO 8601, as Discord sends it."""
    return datetime.now(UTC).isoformat()


def _fields(nulls: str = "", zeros: str = "", falses: str = "", empties: str = "") -> Payload:
    """Build the dull part of a payload: fields Discord always sends that are null, 0, false or []."""
    return {
        **dict.fromkeys(nulls.split()),
        **dict.fromkeys(zeros.split(), 0),
        **dict.fromkeys(falses.split(), False),
        **{key: [] for key in empties.split()},
    }


def _without_user(member: Payload) -> Payload:
    return {k: v for k, v in member.items() if k != "user"}


# --------------------------------------------------------------------------- payload builders


def make_user(username: str = "user", *, id: int | str | None = None, bot: bool = False) -> Payload:
    """Build a user payload."""
    dull = _fields("global_name avatar banner avatar_decoration_data", "public_flags flags", "system")
    return {"id": str(id or new_id()), "username": username, "discriminator": "0", "bot": bot, **dull}


def make_role(name: str, permissions: int = 0, *, id: int | str | None = None, position: int = 1) -> Payload:
    """Build a role payload; Discord sends permissions as a decimal string."""
    dull = _fields("icon unicode_emoji", "color flags", "hoist managed mentionable")
    return {"id": str(id or new_id()), "name": name, "permissions": str(permissions), "position": position, **dull}


def make_member(user: Payload, roles: Iterable[int | str] = (), *, nick: str | None = None) -> Payload:
    """Build a guild member payload (discord.py 2.6+ requires ``flags``)."""
    dull = _fields("avatar premium_since communication_disabled_until", "flags", "deaf mute pending")
    return {"user": user, "roles": [str(r) for r in roles], "nick": nick, "joined_at": now_iso(), **dull}


def make_channel(name: str = "general", *, id: int | str | None = None, position: int = 0, type: int = 0) -> Payload:
    """Build a guild channel payload, a text channel by default (``name`` and ``position`` are required)."""
    dull = _fields("topic parent_id last_message_id", "rate_limit_per_user flags", "nsfw", "permission_overwrites")
    return {"id": str(id or new_id()), "type": type, "name": name, "position": position, **dull}


def make_thread(
    name: str,
    *,
    parent: Payload,
    owner_id: int | str,
    id: int | str | None = None,
    auto_archive_duration: int = 1440,
) -> Payload:
    """Build a public thread in ``parent`` (a thread started on a message has that message's id)."""
    metadata = {"archived": False, "auto_archive_duration": auto_archive_duration, "archive_timestamp": now_iso()}
    metadata |= {"locked": False, "create_timestamp": now_iso()}
    return {
        "id": str(id or new_id()),
        "type": 11,
        "guild_id": parent["guild_id"],
        "parent_id": parent["id"],
        "owner_id": str(owner_id),
        "name": name,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "message_count": 0,
        "member_count": 1,
        "total_message_sent": 0,
        "flags": 0,
        "position": 0,
        "thread_metadata": metadata,
    }


def make_guild(
    name: str = "Test Guild",
    *,
    id: int | str | None = None,
    owner: Payload | None = None,
    members: Iterable[Payload] | None = None,
    roles: Iterable[Payload] = (),
    channels: Iterable[Payload] | None = None,
    everyone_permissions: int = DEFAULT_EVERYONE_PERMISSIONS,
) -> Payload:
    """Build a guild with @everyone and its owner; by default also #general and a plain member "alice"."""
    gid = str(id or new_id())
    owner = owner or make_user("owner")
    member_list = list(members) if members is not None else [make_member(make_user("alice"))]
    if all(m["user"]["id"] != owner["id"] for m in member_list):
        member_list.insert(0, make_member(owner))
    everyone = make_role("@everyone", everyone_permissions, id=gid, position=0)  # its id is the guild's
    dull = _fields(
        "icon splash discovery_splash banner description afk_channel_id system_channel_id rules_channel_id"
        " public_updates_channel_id vanity_url_code application_id",
        "verification_level default_message_notifications explicit_content_filter mfa_level nsfw_level"
        " premium_tier premium_subscription_count system_channel_flags",
        "premium_progress_bar_enabled",
        "features emojis stickers",
    )
    return {
        "id": gid,
        "name": name,
        "owner_id": owner["id"],
        "afk_timeout": 300,
        "preferred_locale": "en-US",
        **dull,
        "roles": [everyone, *roles],
        "channels": [{**c, "guild_id": gid} for c in (channels if channels is not None else [make_channel()])],
        "members": member_list,
    }


# --------------------------------------------------------------------------- records


@dataclass
class UploadedFile:
    """A file part of a multipart request."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class RecordedRequest:
    """One REST call; for multipart bodies ``json`` is the parsed ``payload_json``."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    files: list[UploadedFile]
    headers: dict[str, str]
    at: float = field(default_factory=time.perf_counter)  # when it arrived


@dataclass
class FakeInteraction:
    """What the fake knows about one interaction, looked up by token."""

    id: str
    token: str
    payload: Payload
    message: Payload | None = None  # the message a component was clicked on
    callbacks: list[Payload] = field(default_factory=list)  # [{"type": ..., "data": ...}]
    original: Payload | None = None
    followups: list[Payload] = field(default_factory=list)
    sent_at: float = field(default_factory=time.perf_counter)  # when INTERACTION_CREATE went out
    acked_at: float | None = None  # when the initial response (the callback) arrived

    @property
    def response_type(self) -> int | None:
        """Return the callback type of the initial response, if any."""
        return self.callbacks[0]["type"] if self.callbacks else None


def _json(data: object, status: int = 200) -> web.Response:
    # Not web.json_response: its "; charset=utf-8" makes discord.py treat the body as text.
    return web.Response(body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"})


def _error(status: int, message: str, code: int = 0) -> web.Response:
    return _json({"message": message, "code": code}, status)


def _no_content() -> web.Response:
    return web.Response(status=204)


def _is_true(value: str | None) -> bool:
    return value in ("1", "true", "True")


def _option_type(value: object) -> int:
    """Guess an option type from a Python value, for commands that were never synced."""
    if isinstance(value, bool):
        return 5
    if isinstance(value, int):
        return 4
    if isinstance(value, float):
        return 10
    return 11 if isinstance(value, dict) and "filename" in value else 3


# --------------------------------------------------------------------------- the fake


@dataclass
class ShardSession:
    """One shard's gateway session: its socket, sequence and readiness."""

    shard_id: int
    ws: web.WebSocketResponse | None = None
    session_id: str | None = None
    sequence: int = 0
    live: asyncio.Event = field(default_factory=asyncio.Event)
    ready: asyncio.Event = field(default_factory=asyncio.Event)


def shard_of(guild_id: int | str, shard_count: int) -> int:
    """The shard that owns a server, by Discord's rule."""
    return (int(guild_id) >> 22) % shard_count


class FakeDiscord:
    """An aiohttp server on 127.0.0.1 speaking enough of Discord's REST API and gateway for discord.py."""

    def __init__(
        self,
        *,
        token: str = "fake-token",
        bot_user: Payload | None = None,
        application_id: int | str | None = None,
        guilds: Iterable[Payload] | None = None,
        heartbeat_interval: int = 41250,
        echo_messages: bool = False,
        identify_close_code: int | None = None,
        shard_count: int = 1,
    ) -> None:
        """Set up the world; ``echo_messages`` also dispatches the bot's own messages, as Discord does.

        ``identify_close_code`` makes the gateway close every IDENTIFY with that code, even with the right
        token: 4004 is Discord rejecting a token the REST API still accepted (reset between the two calls).

        A client that IDENTIFYs with ``"shard": [id, count]`` gets only the servers of its shard, and each
        server's events go to the session of the shard that owns it; ``shard_count`` is what ``GET /gateway/bot``
        recommends.
        """
        self.token = token
        self.identify_close_code = identify_close_code
        self.bot_user = bot_user or make_user("testbot", bot=True)
        self.application_id = str(application_id or new_id())
        self.guilds = list(guilds) if guilds is not None else [make_guild()]
        self.heartbeat_interval = heartbeat_interval
        self.echo_messages = echo_messages
        for guild in self.guilds:
            if self.find_member(guild, self.bot_user["id"]) is None:
                guild["members"].append(make_member(self.bot_user))
        owners = [m["user"] for g in self.guilds for m in g["members"] if m["user"]["id"] == g["owner_id"]]
        self.owner = owners[0] if owners else make_user("owner")

        self.port = 0
        self.requests: list[RecordedRequest] = []
        self.unknown: list[RecordedRequest] = []  # requests no route matched (answered 404)
        self.errors: list[tuple[RecordedRequest, Exception]] = []  # bugs in the fake itself
        self.global_commands: list[Payload] = []
        self.guild_commands: dict[str, list[Payload]] = {}
        self.messages: dict[str, Payload] = {}
        self.interactions: dict[str, FakeInteraction] = {}
        self.attachments: dict[str, tuple[bytes, str]] = {}
        self.dm_channels: dict[str, Payload] = {}  # channel id -> DM channel with one user
        # Interaction tokens that have run out (Discord's last 15 minutes): their webhooks answer 401.
        self.expired_tokens: set[str] = set()

        self.identifies: list[Payload] = []
        self.resumes: list[Payload] = []
        self.gateway_received: list[Payload] = []
        self.gateway_queries: list[dict[str, str]] = []
        self.session_id: str | None = None
        self.sequence = 0
        self._ws: web.WebSocketResponse | None = None
        self.shard_count = shard_count
        self.shards: dict[int, ShardSession] = {}  # filled by sharded IDENTIFYs; empty for a plain client
        self._sockets: set[web.WebSocketResponse] = set()
        self._ready = asyncio.Event()
        self._live = asyncio.Event()  # a session is identified or resumed on the current socket
        self._runner: web.AppRunner | None = None
        self._routes = self._route_table()

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Listen on a random port of 127.0.0.1."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/", self._gateway)
        app.router.add_route("*", "/{tail:.*}", self._http)
        # A short shutdown timeout so a test that forgot to close its client does not hang for a minute.
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Close open gateway sockets and the server."""
        for ws in list(self._sockets):
            await ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """The REST base URL, for ``discord.http.Route.BASE``."""
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        """The gateway URL, for ``DiscordWebSocket.DEFAULT_GATEWAY``."""
        return f"ws://127.0.0.1:{self.port}/"

    # ----------------------------------------------------------------- lookups

    @property
    def guild(self) -> Payload:
        """The first guild."""
        return self.guilds[0]

    @property
    def channel(self) -> Payload:
        """The first text channel of the first guild."""
        return next(c for c in self.guild["channels"] if c["type"] == 0)

    @property
    def member(self) -> Payload:
        """The default human talking to the bot: the first member who is neither bot nor owner."""
        humans = [m for m in self.guild["members"] if not m["user"]["bot"]]
        return next((m for m in humans if m["user"]["id"] != self.guild["owner_id"]), humans[0])

    @property
    def intents(self) -> int:
        """The intents of the last IDENTIFY (0 before any)."""
        return int(self.identifies[-1].get("intents", 0)) if self.identifies else 0

    @property
    def identify_count(self) -> int:
        return len(self.identifies)

    @property
    def resume_count(self) -> int:
        return len(self.resumes)

    def find_channel(self, channel_id: int | str) -> tuple[Payload, Payload] | None:
        """Return ``(guild, channel)`` for a channel id."""
        found = (
            (g, c) for g in self.guilds for c in [*g["channels"], *g.get("threads", [])] if c["id"] == str(channel_id)
        )
        return next(found, None)

    def find_member(self, guild: Payload, user_id: int | str) -> Payload | None:
        return next((m for m in guild["members"] if m["user"]["id"] == str(user_id)), None)

    def permissions_for(self, guild: Payload, member: Payload) -> int:
        """Compute guild-level permissions (channel overwrites are not modelled)."""
        if member["user"]["id"] == guild["owner_id"]:
            return ALL_PERMISSIONS
        by_id = {r["id"]: int(r["permissions"]) for r in guild["roles"]}
        perms = by_id.get(guild["id"], 0)
        for role_id in member["roles"]:
            perms |= by_id.get(str(role_id), 0)
        return ALL_PERMISSIONS if perms & ADMINISTRATOR else perms

    def add_attachment(self, name: str, data: bytes, content_type: str = "application/octet-stream") -> Payload:
        """Serve ``data`` at ``/attachments/{name}`` and return its attachment payload (needs a started fake)."""
        self.attachments[name] = (data, content_type)
        url = f"http://127.0.0.1:{self.port}/attachments/{quote(name)}"
        return {
            "id": new_id(),
            "filename": name.rsplit("/", 1)[-1],
            "size": len(data),
            "url": url,
            "proxy_url": url,
            "content_type": content_type,
        }

    # ----------------------------------------------------------------- waiting

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Poll ``predicate`` until it holds."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"condition not met within {timeout}s")
            await asyncio.sleep(0.01)

    async def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until the bot has identified and every GUILD_CREATE was sent."""
        await asyncio.wait_for(self._ready.wait(), timeout)

    async def wait_for_request(
        self,
        method: str,
        path_pattern: str | re.Pattern[str],
        predicate: Callable[[RecordedRequest], bool] | None = None,
        *,
        timeout: float = 10.0,
        since: int = 0,
    ) -> RecordedRequest:
        """Return the first request (from index ``since``) whose path fully matches the regex."""
        pattern = re.compile(path_pattern)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for rec in self.requests[since:]:
                if rec.method == method and pattern.fullmatch(rec.path) and (predicate is None or predicate(rec)):
                    return rec
            if asyncio.get_running_loop().time() > deadline:
                seen = [f"{r.method} {r.path}" for r in self.requests]
                raise TimeoutError(f"no {method} {pattern.pattern} within {timeout}s; seen: {seen}")
            await asyncio.sleep(0.01)

    # ----------------------------------------------------------------- driving the bot

    async def wait_shard_ready(self, shard_id: int, timeout: float = 10.0) -> None:
        """Wait until shard ``shard_id`` has identified and its servers' GUILD_CREATEs were sent."""
        await asyncio.wait_for(self._shard(shard_id).ready.wait(), timeout)

    async def dispatch(self, event: str, data: Payload, timeout: float = 10.0) -> None:
        """Send a DISPATCH once a session is live (so it waits across a reconnect), to the shard owning its server."""
        session = self._owner(data)
        await asyncio.wait_for((session.live if session else self._live).wait(), timeout)
        await self._dispatch_now(event, data)

    async def drop_gateway(self, code: int = 4000, *, reconnect_op: bool = False) -> None:
        """Close the bot's socket with ``code``, or ask it to reconnect with op 7."""
        ws, self._ws = self._ws, None
        self._live.clear()
        if ws is None:
            raise RuntimeError("no gateway connection to drop")
        if reconnect_op:
            await self._send(ws, {"op": 7, "d": None})
        else:
            await ws.close(code=code)

    async def send_interaction(
        self,
        name: str | None = None,
        options: Mapping[str, Any] | list[Payload] | None = None,
        *,
        type: int | None = None,
        focused: str | None = None,
        custom_id: str | None = None,
        message: Payload | int | str | None = None,
        component_type: int = 2,
        values: Iterable[str] | None = None,
        user_id: int | str | None = None,
        channel_id: int | str | None = None,
        locale: str = "en-US",
        modal: Payload | None = None,
        target: Payload | None = None,
    ) -> FakeInteraction:
        """Dispatch INTERACTION_CREATE for a slash command (``name`` may be "group sub"), an autocomplete
        (``focused`` names the option being typed), a component click (``custom_id`` and ``message``) or a
        message command (``name`` and ``target``, the message right-clicked).

        A click or a message command happens in the channel of its message unless ``channel_id`` says otherwise.

        ``options`` maps names to values (attachment payloads for attachments, ids for users, channels and
        roles) or is a raw option list. Option types come from the synced command, else from the values.
        """
        itype = type or (3 if custom_id is not None else 4 if focused is not None else 2)
        if channel_id is None and ((custom_id is not None and message is not None) or target is not None):
            where = target if target is not None else message if isinstance(message, dict) else None
            channel_id = (where or self.messages[str(message)])["channel_id"]
        guild, channel, member = self._where(channel_id, user_id)
        clicked: Payload | None = None
        if itype == 5:  # a modal submit: ``modal`` is its data (see submit_modal)
            data = dict(modal or {})
        elif itype == 3:
            clicked = message if isinstance(message, dict) else self.messages[str(message)]
            data: Payload = {"custom_id": custom_id, "component_type": component_type}
            if values is not None:
                data["values"] = list(values)
        elif name is None:
            raise ValueError("a command name is needed")
        else:
            data = self._command_data(name, options or {}, focused, guild, target)

        perms = str(self.permissions_for(guild, member))
        bot_member = self.find_member(guild, self.bot_user["id"])
        assert bot_member is not None
        payload: Payload = {
            "id": new_id(),
            "token": f"itoken-{uuid.uuid4().hex}",
            "version": 1,
            "application_id": self.application_id,
            "type": itype,
            "data": data,
            "guild_id": guild["id"],
            "guild": {"id": guild["id"], "locale": guild["preferred_locale"], "features": guild["features"]},
            "channel_id": channel["id"],
            "channel": {**channel, "permissions": perms},
            "member": {**member, "permissions": perms},
            "app_permissions": str(self.permissions_for(guild, bot_member)),
            "locale": locale,
            "guild_locale": guild["preferred_locale"],
            "entitlements": [],
            "authorizing_integration_owners": {"0": guild["id"]},  # installed to the guild
            "context": 0,
            "attachment_size_limit": 25 * 1024 * 1024,
        }
        if clicked is not None:
            payload["message"] = clicked
        interaction = FakeInteraction(payload["id"], payload["token"], payload, message=clicked)
        self.interactions[interaction.token] = interaction
        await self.dispatch("INTERACTION_CREATE", payload)
        interaction.sent_at = time.perf_counter()  # after waiting for a live session, when the bot can see it
        return interaction

    async def submit_modal(
        self, opened: FakeInteraction, values: Mapping[str, str], *, user_id: int | str | None = None
    ) -> FakeInteraction:
        """Fill in the modal that ``opened`` answered with (values by input label) and submit it, as a user would.

        Discord's client enforces each input's ``required`` and ``max_length``; so does this.
        """
        [callback] = opened.callbacks
        assert callback["type"] == 9, f"the interaction was answered with type {callback['type']}, not a modal"
        modal = callback["data"]
        rows: list[Payload] = []
        for row in modal["components"]:
            field = row["components"][0] if row["type"] == 1 else row["component"]
            value = values.get(field["label"], "")
            if field.get("required", True) and not value:
                raise ValueError(f"Discord would not submit the modal without '{field['label']}'")
            if len(value) > int(field.get("max_length") or 4000):
                raise ValueError(f"Discord would not take {len(value)} characters in '{field['label']}'")
            answered = {"type": 4, "custom_id": field["custom_id"], "value": value}
            rows.append(
                {"type": 1, "components": [answered]} if row["type"] == 1 else {"type": 18, "component": answered}
            )
        return await self.send_interaction(
            type=5,
            user_id=user_id or opened.payload["member"]["user"]["id"],
            channel_id=opened.payload["channel_id"],
            modal={"custom_id": modal["custom_id"], "components": rows},
        )

    async def send_message_create(
        self,
        content: str = "",
        *,
        author_id: int | str | None = None,
        channel_id: int | str | None = None,
        mentions: Iterable[int | str] = (),
        reply_to: Payload | int | str | None = None,
        mention_reply: bool = True,
        embeds: Iterable[Payload] = (),
        attachments: Iterable[Payload] = (),
    ) -> Payload:
        """Dispatch MESSAGE_CREATE from a guild member and return the payload as sent.

        Like Discord, without the MESSAGE_CONTENT intent content, embeds and attachments arrive blank
        unless the bot is mentioned (``<@id>`` in the text, ``mentions``, or a reply that pings it).
        """
        guild, channel, member = self._where(channel_id, author_id)
        msg = self._new_message(channel["id"], {"content": content, "embeds": list(embeds)}, author=member["user"])
        msg |= {"attachments": list(attachments), "guild_id": guild["id"], "member": _without_user(member)}
        mentioned = [str(m) for m in mentions] + re.findall(r"<@!?(\d+)>", content)
        if reply_to is not None:
            ref = reply_to if isinstance(reply_to, dict) else self.messages[str(reply_to)]
            self._add_reference(msg, ref["id"], guild["id"])
            if mention_reply:
                mentioned.append(ref["author"]["id"])
        msg["mentions"] = [self._mention(guild, user_id) for user_id in dict.fromkeys(mentioned)]
        self.messages[msg["id"]] = msg
        sent = dict(msg)
        if not self.intents & MESSAGE_CONTENT_INTENT and self.bot_user["id"] not in mentioned:
            sent |= {"content": "", "embeds": [], "attachments": [], "components": []}
        await self.dispatch("MESSAGE_CREATE", sent)
        return sent

    async def send_direct_message(self, content: str, *, author: Payload | None = None) -> Payload:
        """Dispatch MESSAGE_CREATE in a DM between ``author`` (default :attr:`member`'s user) and the bot.

        DMs carry no guild and, like on Discord, their content is never blanked.
        """
        user = author or self.member["user"]
        channel = next((c for c in self.dm_channels.values() if c["recipients"][0]["id"] == user["id"]), None)
        if channel is None:
            channel = {"id": new_id(), "type": 1, "recipients": [user], "last_message_id": None}
            self.dm_channels[channel["id"]] = channel
        msg = self._new_message(channel["id"], {"content": content}, author=user)
        self.messages[msg["id"]] = msg
        await self.dispatch("MESSAGE_CREATE", msg)
        return msg

    # ----------------------------------------------------------------- payload helpers

    def _where(self, channel_id: int | str | None, user_id: int | str | None) -> tuple[Payload, Payload, Payload]:
        """Resolve a channel (default #general) and a member (default :attr:`member`)."""
        found = self.find_channel(channel_id or self.channel["id"])
        if found is None:
            raise KeyError(f"unknown channel {channel_id}")
        member = self.find_member(found[0], user_id or self.member["user"]["id"])
        if member is None:
            raise KeyError(f"user {user_id} is not a member of {found[0]['name']}")
        return found[0], found[1], member

    def _command_data(
        self,
        name: str,
        values: Mapping[str, Any] | list[Payload],
        focused: str | None,
        guild: Payload,
        target: Payload | None = None,
    ) -> Payload:
        if target is not None:  # a message command: one name, no options, the message in ``resolved``
            kind = 3
            path = [name]
        else:
            kind = 1
            path = name.split()
        spec = next(
            (c for c in self.guild_commands.get(guild["id"], []) if c["name"] == path[0] and c["type"] == kind), None
        )
        command_guild = guild["id"] if spec else None
        spec = spec or next((c for c in self.global_commands if c["name"] == path[0] and c["type"] == kind), None)
        if target is not None:
            # The message as stored: a message command's target carries its content even without the intent.
            target = self.messages.get(target["id"], target)
            data: Payload = {"id": (spec or {}).get("id") or new_id(), "name": name, "type": 3}
            data |= {"target_id": target["id"], "resolved": {"messages": {target["id"]: target}}}
            return data | ({"guild_id": command_guild} if command_guild else {})
        spec_options: list[Payload] = (spec or {}).get("options", [])
        for part in path[1:]:
            spec_options = next((o.get("options", []) for o in spec_options if o["name"] == part), [])
        resolved: Payload = {}
        if isinstance(values, list):  # raw option payloads: the caller knows best
            options = values
        else:
            options = [
                self._option(spec_options, k, v, focused=focused, resolved=resolved, guild=guild)
                for k, v in values.items()
            ]
        for depth, part in reversed(list(enumerate(path[1:], 1))):
            options = [{"name": part, "type": 2 if depth < len(path) - 1 else 1, "options": options}]
        data: Payload = {"id": (spec or {}).get("id") or new_id(), "name": path[0], "type": 1, "options": options}
        if resolved:
            data["resolved"] = resolved
        if command_guild:
            data["guild_id"] = command_guild  # discord.py looks guild commands up by this field
        return data

    def _option(
        self,
        spec_options: list[Payload],
        name: str,
        value: Any,
        *,
        focused: str | None,
        resolved: Payload,
        guild: Payload,
    ) -> Payload:
        otype = next((o["type"] for o in spec_options if o["name"] == name), None) or _option_type(value)
        if name == focused:  # Discord sends what the user typed so far, as a string
            return {"name": name, "type": otype, "value": str(value), "focused": True}
        if otype == 11:
            resolved.setdefault("attachments", {})[value["id"]] = value
            value = value["id"]
        elif otype in (6, 9) and (member := self.find_member(guild, value)) is not None:
            resolved.setdefault("users", {})[str(value)] = member["user"]
            perms = str(self.permissions_for(guild, member))
            resolved.setdefault("members", {})[str(value)] = {**_without_user(member), "permissions": perms}
        elif otype == 7 and (found := self.find_channel(value)) is not None:
            resolved.setdefault("channels", {})[str(value)] = {**found[1], "permissions": str(ALL_PERMISSIONS)}
        elif otype == 8 and (role := next((r for r in guild["roles"] if r["id"] == str(value)), None)):
            resolved.setdefault("roles", {})[str(value)] = role
        return {"name": name, "type": otype, "value": str(value) if otype in (6, 7, 8, 9) else value}

    def _mention(self, guild: Payload, user_id: str) -> Payload:
        member = self.find_member(guild, user_id)
        return {**member["user"], "member": _without_user(member)} if member else make_user(id=user_id)

    def _add_reference(self, msg: Payload, message_id: str, guild_id: str | None) -> None:
        msg["type"] = 19  # reply
        ref = {"type": 0, "message_id": message_id, "channel_id": msg["channel_id"], "guild_id": guild_id}
        msg["message_reference"] = ref
        msg["referenced_message"] = self.messages.get(str(message_id))

    def _uploads(self, files: list[UploadedFile]) -> list[Payload]:
        """Turn uploaded files into attachments served by the fake, like Discord's CDN."""
        return [
            self.add_attachment(
                f"{new_id()}/{f.filename or f.name}", f.data, f.content_type or "application/octet-stream"
            )
            for f in files
        ]

    def _new_message(
        self, channel_id: str, body: Payload, files: Iterable[UploadedFile] = (), *, author: Payload | None = None
    ) -> Payload:
        dull = _fields("edited_timestamp", "", "tts mention_everyone pinned", "mentions mention_roles reactions")
        return dull | {
            "id": new_id(),
            "type": 0,
            "channel_id": str(channel_id),
            "author": author or self.bot_user,
            "content": body.get("content") or "",
            "tts": bool(body.get("tts")),
            "timestamp": now_iso(),
            "attachments": self._uploads(list(files)),
            "embeds": body.get("embeds") or [],
            "flags": int(body.get("flags") or 0),
            "components": body.get("components") or [],
        }

    async def _store_bot_message(self, msg: Payload) -> Payload:
        """Keep a message the bot sent and, if asked, echo it on the gateway (Discord skips ephemerals)."""
        self.messages[msg["id"]] = msg
        if self.echo_messages and not msg["flags"] & (EPHEMERAL | LOADING):
            guild = self.find_channel(msg["channel_id"])
            echo = msg | ({"guild_id": guild[0]["id"]} if guild else {})
            if self._is_live(echo):
                await self._dispatch_now("MESSAGE_CREATE", echo)
        return msg

    async def _interaction_message(
        self, interaction: FakeInteraction, body: Payload, files: list[UploadedFile]
    ) -> Payload:
        payload = interaction.payload
        msg = self._new_message(payload["channel_id"], body, files)
        msg["type"] = 20 if payload["type"] == 2 else 0  # 20 = reply to a chat input command
        msg["webhook_id"] = msg["application_id"] = self.application_id
        msg["interaction_metadata"] = {
            "id": payload["id"],
            "type": payload["type"],
            "user": payload["member"]["user"],
            "authorizing_integration_owners": payload["authorizing_integration_owners"],
        }
        return await self._store_bot_message(msg)

    def _apply_edit(self, msg: Payload, body: Payload, files: list[UploadedFile]) -> None:
        was_loading = msg["flags"] & LOADING
        for key, empty in (("content", ""), ("embeds", []), ("components", [])):
            if key in body:
                msg[key] = body[key] if body[key] is not None else empty
        if body.get("flags") is not None:
            msg["flags"] = (msg["flags"] & EPHEMERAL) | int(body["flags"])  # ephemerality cannot be edited
        msg["flags"] &= ~LOADING
        if "attachments" in body or files:  # the attachments list names the old ones to keep
            keep = {str(a["id"]) for a in body.get("attachments") or []}
            msg["attachments"] = [a for a in msg["attachments"] if a["id"] in keep] + self._uploads(files)
        if not was_loading:  # filling in a deferred response is not an edit
            msg["edited_timestamp"] = now_iso()

    def _guild_create(self, guild: Payload) -> Payload:
        gateway_only = _fields(
            "", "", "large unavailable", "voice_states presences threads stage_instances guild_scheduled_events"
        )
        # member_count equal to the members sent: discord.py then considers the guild chunked.
        member_count = guild.get("member_count", len(guild["members"]))
        live = {"threads": [t for t in guild.get("threads", []) if not t["thread_metadata"]["archived"]]}
        return (
            guild
            | gateway_only
            | live
            | {"soundboard_sounds": [], "member_count": member_count, "joined_at": now_iso()}
        )

    # ----------------------------------------------------------------- HTTP

    def _route_table(self) -> list[tuple[list[str], re.Pattern[str], bool, Handler]]:
        app, token, mid = r"(?P<app>\d+)", r"(?P<token>[^/]+)", r"(?P<mid>@original|\d+)"
        table: list[tuple[str, str, bool, Handler]] = [  # methods, path regex, needs the bot token, handler
            ("GET", r"/users/@me", True, self._get_me),
            ("GET", r"/oauth2/applications/@me", True, self._get_application),
            ("GET", r"/gateway/bot", True, self._gateway_bot),
            ("GET PUT", rf"/applications/{app}/commands", True, self._commands),
            ("GET PUT", rf"/applications/{app}/guilds/(?P<guild>\d+)/commands", True, self._commands),
            ("POST", rf"/interactions/(?P<iid>\d+)/{token}/callback", False, self._callback),
            ("POST", rf"/webhooks/{app}/{token}", False, self._followup),
            ("GET PATCH DELETE", rf"/webhooks/{app}/{token}/messages/{mid}", False, self._webhook_message),
            ("GET", r"/channels/(?P<cid>\d+)", True, self._get_channel),
            ("POST", r"/channels/(?P<cid>\d+)/messages", True, self._post_message),
            ("GET PATCH DELETE", r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)", True, self._channel_message),
            ("POST", r"/channels/(?P<cid>\d+)/typing", True, self._typing),
            ("POST", r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)/threads", True, self._start_thread),
            ("GET", r"/attachments/(?P<name>.+)", False, self._get_attachment),
        ]
        return [(methods.split(), re.compile(pattern), auth, handler) for methods, pattern, auth, handler in table]

    async def _http(self, request: web.Request) -> web.StreamResponse:
        body: Any = None
        files: list[UploadedFile] = []
        if request.content_type.startswith("multipart/"):
            async for part in await request.multipart():
                if not isinstance(part, aiohttp.BodyPartReader):
                    continue
                if part.name == "payload_json":
                    body = json.loads(await part.text())
                else:
                    ctype = part.headers.get(aiohttp.hdrs.CONTENT_TYPE)
                    files.append(UploadedFile(part.name or "", part.filename, ctype, bytes(await part.read())))
        elif request.can_read_body:
            raw = await request.read()
            body = json.loads(raw) if raw and request.content_type == "application/json" else raw.decode() or None
        path = request.path.removeprefix(API_PREFIX)
        rec = RecordedRequest(request.method, path, dict(request.query), body, files, dict(request.headers))
        self.requests.append(rec)

        for methods, pattern, auth, handler in self._routes:
            match = pattern.fullmatch(path)
            if match is None or request.method not in methods:
                continue
            if auth and request.headers.get("Authorization") != f"Bot {self.token}":
                return _error(401, "401: Unauthorized")
            if match.groupdict().get("token") in self.expired_tokens:
                return _error(401, "Invalid Webhook Token", code=50027)
            try:
                return await handler(rec, **match.groupdict())
            except Exception as exc:  # a 5xx would make discord.py retry with sleeps
                self.errors.append((rec, exc))
                return _error(400, f"fake discord error: {exc!r}")
        self.unknown.append(rec)
        return _error(404, "404: Not Found")

    async def _get_me(self, _rec: RecordedRequest) -> web.StreamResponse:
        return _json({**self.bot_user, "verified": True, "mfa_enabled": False, "email": None})

    async def _gateway_bot(self, _rec: RecordedRequest) -> web.StreamResponse:
        limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
        return _json({"url": self.gateway_url, "shards": self.shard_count, "session_start_limit": limit})

    async def _get_application(self, _rec: RecordedRequest) -> web.StreamResponse:
        app = {"id": self.application_id, "name": self.bot_user["username"], "description": "", "icon": None}
        return _json(
            app
            | {"bot_public": True, "bot_require_code_grant": False, "owner": self.owner, "verify_key": "0" * 64}
            | {"interactions_endpoint_url": None, "flags": 0, "team": None, "rpc_origins": []}
        )

    async def _commands(self, rec: RecordedRequest, app: str, guild: str | None = None) -> web.StreamResponse:
        if app != self.application_id:
            return _error(404, "Unknown Application", 10002)
        current = self.guild_commands.get(guild, []) if guild else self.global_commands
        if rec.method == "GET":
            return _json(current)
        # Like Discord, a bulk overwrite keeps the id of a command that keeps its name.
        ids = {(c["name"], c["type"]): c["id"] for c in current}
        synced = [
            cmd
            | {"type": cmd.get("type", 1), "application_id": self.application_id, "version": new_id()}
            | {"description": cmd.get("description", "")}  # context menus have none; Discord answers ""
            | {"id": ids.get((cmd["name"], cmd.get("type", 1))) or new_id()}
            | ({"guild_id": guild} if guild else {})
            for cmd in rec.json or []
        ]
        if guild:
            self.guild_commands[guild] = synced
        else:
            self.global_commands = synced
        return _json(synced)

    async def _callback(self, rec: RecordedRequest, iid: str, token: str) -> web.StreamResponse:
        interaction = self.interactions.get(token)
        if interaction is None or interaction.id != iid:
            return _error(404, "Unknown interaction", 10062)
        if interaction.callbacks:
            return _error(400, "Interaction has already been acknowledged.", 40060)
        body = rec.json or {}
        ctype, data = body.get("type"), body.get("data") or {}
        interaction.callbacks.append({"type": ctype, "data": data})
        interaction.acked_at = rec.at
        message: Payload | None = None
        if ctype == 4:  # channel message with source
            message = await self._interaction_message(interaction, data, rec.files)
        elif ctype == 5:  # deferred channel message: a "thinking..." placeholder until @original is edited
            flags = int(data.get("flags") or 0) | LOADING
            message = await self._interaction_message(interaction, {"flags": flags}, [])
        elif ctype in (6, 7) and interaction.message is not None:  # deferred update / update message
            message = self.messages.setdefault(interaction.message["id"], interaction.message)
            if ctype == 7:
                self._apply_edit(message, data, rec.files)
        interaction.original = message  # 8 (autocomplete) and 9 (modal) leave no message
        if not _is_true(rec.query.get("with_response")):
            return _no_content()
        result: Payload = {
            "interaction": {
                "id": iid,
                "type": interaction.payload["type"],
                "activity_instance_id": None,
                "response_message_id": message["id"] if message else None,
                "response_message_loading": ctype == 5,
                "response_message_ephemeral": bool(message and message["flags"] & EPHEMERAL),
            }
        }
        if message is not None and ctype in (4, 5, 7):
            result["resource"] = {"type": ctype, "message": message}
        return _json(result)

    def _webhook_interaction(self, app: str, token: str) -> FakeInteraction | None:
        interaction = self.interactions.get(token)
        # Discord answers "Unknown Webhook" to webhook calls made before the initial response.
        return interaction if app == self.application_id and interaction and interaction.callbacks else None

    async def _followup(self, rec: RecordedRequest, app: str, token: str) -> web.StreamResponse:
        interaction = self._webhook_interaction(app, token)
        if interaction is None:
            return _error(404, "Unknown Webhook", 10015)
        msg = await self._interaction_message(interaction, rec.json or {}, rec.files)
        interaction.followups.append(msg)
        return _json(msg) if _is_true(rec.query.get("wait")) else _no_content()

    async def _webhook_message(self, rec: RecordedRequest, app: str, token: str, mid: str) -> web.StreamResponse:
        interaction = self._webhook_interaction(app, token)
        if interaction is None:
            return _error(404, "Unknown Webhook", 10015)
        candidates = [interaction.original, *interaction.followups]
        if mid == "@original":
            msg = interaction.original
        else:
            msg = next((m for m in candidates if m and m["id"] == mid), None)
        if msg is None:
            return _error(404, "Unknown Message", 10008)
        if rec.method == "DELETE":
            self.messages.pop(msg["id"], None)
            if msg is interaction.original:
                interaction.original = None
            else:
                interaction.followups.remove(msg)
            return _no_content()
        if rec.method == "PATCH":
            self._apply_edit(msg, rec.json or {}, rec.files)
        return _json(msg)

    async def _get_channel(self, _rec: RecordedRequest, cid: str) -> web.StreamResponse:
        found = self.find_channel(cid)
        if found is None and cid in self.dm_channels:
            return _json(self.dm_channels[cid])
        return _json(found[1]) if found else _error(404, "Unknown Channel", 10003)

    async def _post_message(self, rec: RecordedRequest, cid: str) -> web.StreamResponse:
        found = self.find_channel(cid)
        if found is None and cid not in self.dm_channels:
            return _error(404, "Unknown Channel", 10003)
        body = rec.json or {}
        msg = self._new_message(cid, body, rec.files)
        if (ref := body.get("message_reference")) is not None:
            self._add_reference(msg, str(ref["message_id"]), found[0]["id"] if found else None)
        return _json(await self._store_bot_message(msg))

    async def _channel_message(self, rec: RecordedRequest, cid: str, mid: str) -> web.StreamResponse:
        msg = self.messages.get(mid)
        if msg is None or msg["channel_id"] != cid:
            return _error(404, "Unknown Message", 10008)
        if rec.method == "DELETE":
            del self.messages[mid]
            return _no_content()
        if rec.method == "PATCH":
            self._apply_edit(msg, rec.json or {}, rec.files)
        return _json(msg)

    async def _start_thread(self, rec: RecordedRequest, cid: str, mid: str) -> web.StreamResponse:
        """Start a public thread on a message: its id is the message's, and THREAD_CREATE follows, as on Discord."""
        found = self.find_channel(cid)
        if found is None:
            return _error(404, "Unknown Channel", 10003)
        guild, channel = found
        msg = self.messages.get(mid)
        if msg is None or msg["channel_id"] != cid or msg["flags"] & EPHEMERAL:
            return _error(404, "Unknown Message", 10008)
        if channel["type"] in THREAD_TYPES:
            return _error(400, "Cannot execute action on this channel type", 50024)
        if self.find_channel(mid) is not None:
            return _error(400, "A thread has already been created for this message", 160004)
        body = rec.json or {}
        thread = make_thread(
            str(body.get("name") or ""),
            id=mid,
            parent=channel,
            owner_id=self.bot_user["id"],
            auto_archive_duration=int(body.get("auto_archive_duration") or 1440),
        )
        guild.setdefault("threads", []).append(thread)
        msg["flags"] |= HAS_THREAD
        msg["thread"] = thread
        if self._is_live(thread):
            await self._dispatch_now("THREAD_CREATE", thread | {"newly_created": True})
        return _json(thread)

    async def _typing(self, _rec: RecordedRequest, cid: str) -> web.StreamResponse:
        known = self.find_channel(cid) or cid in self.dm_channels
        return _no_content() if known else _error(404, "Unknown Channel", 10003)

    async def _get_attachment(self, _rec: RecordedRequest, name: str) -> web.StreamResponse:
        if name not in self.attachments:
            return _error(404, "404: Not Found")
        data, content_type = self.attachments[name]
        return web.Response(body=data, headers={"Content-Type": content_type})

    # ----------------------------------------------------------------- gateway

    async def _send(self, ws: web.WebSocketResponse, payload: Payload) -> None:
        await ws.send_str(json.dumps(payload))

    def _shard(self, shard_id: int) -> ShardSession:
        return self.shards.setdefault(shard_id, ShardSession(shard_id))

    def _owner(self, data: Payload, ws: web.WebSocketResponse | None = None) -> ShardSession | None:
        """The shard session an event belongs to (by socket, else by server; DMs to shard 0), None when unsharded."""
        if not self.shards:
            return None
        if ws is not None:
            return next((s for s in self.shards.values() if s.ws is ws), None)
        guild_id = data.get("guild_id")
        return self._shard(shard_of(guild_id, self.shard_count) if guild_id else 0)

    def _is_live(self, data: Payload) -> bool:
        session = self._owner(data)
        return (session.live if session else self._live).is_set()

    async def _dispatch_now(self, event: str, data: Payload, ws: web.WebSocketResponse | None = None) -> None:
        session = self._owner(data, ws)
        if session is not None:
            if session.ws is None:
                raise RuntimeError(f"shard {session.shard_id} is not connected to the gateway")
            session.sequence += 1
            await self._send(session.ws, {"op": 0, "t": event, "s": session.sequence, "d": data})
            return
        target = ws or self._ws
        if target is None:
            raise RuntimeError("the bot is not connected to the gateway")
        self.sequence += 1
        await self._send(target, {"op": 0, "t": event, "s": self.sequence, "d": data})

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.gateway_queries.append(dict(request.query))
        self._sockets.add(ws)
        try:
            # Plain JSON text frames even though zlib-stream was asked for: discord.py only inflates binary ones.
            await self._send(ws, {"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval}})
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    await self._on_gateway_payload(ws, json.loads(msg.data))
        finally:
            self._sockets.discard(ws)
            if self._ws is ws:
                self._ws = None
                self._live.clear()
            for session in self.shards.values():
                if session.ws is ws:
                    session.ws = None
                    session.live.clear()
        return ws

    async def _on_gateway_payload(self, ws: web.WebSocketResponse, payload: Payload) -> None:
        self.gateway_received.append(payload)
        op, data = payload.get("op"), payload.get("d") or {}
        if op == 1:
            await self._send(ws, {"op": 11})
        elif op == 2:
            await self._identify(ws, data)
        elif op == 6:
            await self._resume(ws, data)
        elif op == 8:
            await self._request_members(ws, data)

    async def _identify(self, ws: web.WebSocketResponse, data: Payload) -> None:
        self.identifies.append(data)
        if self.identify_close_code is not None:
            await ws.close(code=self.identify_close_code, message=b"Closed by the test.")
            return
        if data.get("token") != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return
        if data.get("shard") is not None:
            await self._identify_shard(ws, *data["shard"])
            return
        self._ready.clear()
        self.session_id, self.sequence, self._ws = uuid.uuid4().hex, 0, ws
        ready = {
            "v": 10,
            "user": {**self.bot_user, "verified": True, "mfa_enabled": False},
            "guilds": [{"id": g["id"], "unavailable": True} for g in self.guilds],
            "session_id": self.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": self.application_id, "flags": 0},
        }
        await self._dispatch_now("READY", ready | _fields(empties="private_channels presences relationships"), ws)
        for guild in self.guilds:
            await self._dispatch_now("GUILD_CREATE", self._guild_create(guild), ws)
        self._live.set()
        self._ready.set()

    async def _identify_shard(self, ws: web.WebSocketResponse, shard_id: int, shard_count: int) -> None:
        """Start shard ``shard_id``'s session with only the servers it owns."""
        self.shard_count = shard_count
        session = self._shard(shard_id)
        session.ready.clear()
        session.ws, session.session_id, session.sequence = ws, uuid.uuid4().hex, 0
        guilds = [g for g in self.guilds if shard_of(g["id"], shard_count) == shard_id]
        ready = {
            "v": 10,
            "user": {**self.bot_user, "verified": True, "mfa_enabled": False},
            "guilds": [{"id": g["id"], "unavailable": True} for g in guilds],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": self.application_id, "flags": 0},
            "shard": [shard_id, shard_count],
        }
        await self._dispatch_now("READY", ready | _fields(empties="private_channels presences relationships"), ws)
        for guild in guilds:
            await self._dispatch_now("GUILD_CREATE", self._guild_create(guild), ws)
        session.live.set()
        session.ready.set()
        if all(self._shard(shard).ready.is_set() for shard in range(shard_count)):
            self._ready.set()

    async def _resume(self, ws: web.WebSocketResponse, data: Payload) -> None:
        self.resumes.append(data)
        session = next((s for s in self.shards.values() if s.session_id == data.get("session_id")), None)
        if session is not None and data.get("token") == self.token:
            session.ws = ws
            await self._dispatch_now("RESUMED", {}, ws)
            session.live.set()
            return
        if data.get("token") != self.token or data.get("session_id") != self.session_id:
            await self._send(ws, {"op": 9, "d": False})  # invalid session, not resumable
            return
        self._ws = ws
        # Nothing is queued while the bot is away (dispatch waits instead), so there is nothing to replay.
        await self._dispatch_now("RESUMED", {}, ws)
        self._live.set()

    async def _request_members(self, ws: web.WebSocketResponse, data: Payload) -> None:
        guild = next((g for g in self.guilds if g["id"] == str(data.get("guild_id"))), None)
        members = guild["members"] if guild else []
        if data.get("user_ids"):
            wanted = {str(u) for u in data["user_ids"]}
            members = [m for m in members if m["user"]["id"] in wanted]
        elif data.get("query"):
            members = [m for m in members if m["user"]["username"].lower().startswith(data["query"].lower())]
        if data.get("limit"):
            members = members[: data["limit"]]
        chunk = {"guild_id": str(data.get("guild_id")), "members": members, "chunk_index": 0, "chunk_count": 1}
        chunk |= {"not_found": [], "presences": []} | ({"nonce": data["nonce"]} if data.get("nonce") else {})
        await self._dispatch_now("GUILD_MEMBERS_CHUNK", chunk, ws)


def patch_discord(monkeypatch: pytest.MonkeyPatch, fake: FakeDiscord) -> None:
    """Point discord.py's REST base and default gateway at ``fake``."""
    monkeypatch.setattr(discord.http.Route, "BASE", fake.base_url)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url))
