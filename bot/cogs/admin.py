"""``/rebuild``: re-embed a server's collection, editing its message with progress."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from types import TracebackType

import discord
from discord import app_commands
from discord.ext import commands

from bot import checks, render
from bot.client import NewsQuoteBot

log = logging.getLogger(__name__)


class ProgressReporter:
    """Carry ``(done, total)`` from a worker thread to message edits on the event loop, one per interval at most."""

    def __init__(self, edit: Callable[[str], Awaitable[object]], interval: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._edit = edit
        self._interval = interval
        self._latest = (0, 0)
        self._changed = asyncio.Event()
        self._editing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def __call__(self, done: int, total: int) -> None:
        """Record progress; called from the worker thread."""
        with suppress(RuntimeError):  # the loop is gone: the bot stopped under a running rebuild
            self._loop.call_soon_threadsafe(self._update, done, total)

    def _update(self, done: int, total: int) -> None:
        self._latest = (done, total)
        self._changed.set()

    async def _run(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            async with self._editing:
                try:
                    await self._edit(render.rebuild_progress(*self._latest))
                except discord.HTTPException as exc:
                    log.warning("Could not show rebuild progress: %s", exc)
            await asyncio.sleep(self._interval)

    async def __aenter__(self) -> ProgressReporter:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._task is not None
        async with self._editing:  # never cut an edit short: it could land after the final message
            self._task.cancel()
        with suppress(asyncio.CancelledError):
            await self._task


class Admin(commands.Cog):
    """Maintenance commands for a server's index."""

    def __init__(self, bot: NewsQuoteBot) -> None:
        self.bot = bot
        self.rebuilding: set[str] = set()

    @app_commands.command()
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)  # admin roles: Server Settings > Integrations can show it
    @checks.admin_only("rebuild the index")
    async def rebuild(self, interaction: discord.Interaction[NewsQuoteBot]) -> None:
        """Re-embed all of this server's articles (after a model change), showing progress."""
        collection = checks.guild_collection(interaction)
        if collection in self.rebuilding:
            raise checks.Refused("A rebuild of this server's index is already running.")
        self.rebuilding.add(collection)
        try:
            await interaction.response.defer(thinking=True)
            interval = self.bot.settings.progress_interval_seconds
            async with ProgressReporter(lambda text: interaction.edit_original_response(content=text), interval) as on:
                result = await asyncio.to_thread(self.bot.engine.rebuild, collection, on)
            await _announce(interaction, render.rebuilt(result))
        finally:
            self.rebuilding.discard(collection)


async def _announce(interaction: discord.Interaction[NewsQuoteBot], text: str) -> None:
    """Edit the command's message; past the interaction's 15 minutes Discord refuses, so post in the channel."""
    try:
        await interaction.edit_original_response(content=text)
    except discord.HTTPException:
        if not isinstance(interaction.channel, discord.abc.Messageable):
            raise
        await interaction.channel.send(text)


async def setup(bot: NewsQuoteBot) -> None:
    await bot.add_cog(Admin(bot))
