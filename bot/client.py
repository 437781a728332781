"""The Discord client: engine and settings injected, cogs loaded, commands synced, one error handler."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import threading
from contextlib import suppress
from typing import Any

import discord
import yarl
from discord import app_commands
from discord.ext import commands

from bot import render
from bot.checks import Cooldowns
from bot.settings import BotSettings
from index import Engine
from index.errors import DatabaseDamagedError, NewsQuoteError, UserInputError

log = logging.getLogger(__name__)

EXTENSIONS = ("bot.cogs.ask", "bot.cogs.articles", "bot.cogs.admin", "bot.cogs.feeds")
OUT_OF_SYNC = "This command changed since Discord last synced it: try again in a minute."
BAD_OPTION = "I could not read one of the options you gave: check it and try again."
DAMAGED = "My database is damaged, so I cannot do that now. The bot's log tells its owner what to do."
RESTARTING = "I am restarting: try again in a minute."
SHUTDOWN_GRACE_SECONDS = 5.0  # under the 10 s a container runtime waits between SIGTERM and SIGKILL
MODEL_LOADER = "load-model"
# Tasks discord.py starts for commands, components, modals and messages: the work a clean stop lets finish.
WORK_TASKS = ("CommandTree-invoker", "discord-ui-", "discord.py: on_message")


def use_endpoints(api_base_url: str, gateway_url: str) -> None:
    """Point discord.py at a Discord-compatible REST API and gateway (Discord's own by default)."""
    discord.http.Route.BASE = api_base_url.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


def intents_for(settings: BotSettings) -> discord.Intents:
    """Ask only for what the bot uses: servers, and messages for the mention flow."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.dm_messages = True
    intents.message_content = settings.message_content
    return intents


def describe_error(error: BaseException) -> str | None:
    """Return the message a user should see for ``error``, or None when it is a bug."""
    if isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    if isinstance(error, NewsQuoteError):
        return str(error)
    if isinstance(error, app_commands.CommandOnCooldown):
        return render.cooldown(error.retry_after)
    if isinstance(error, app_commands.CheckFailure):
        return str(error) or "You cannot use this command here."
    if isinstance(error, app_commands.CommandNotFound | app_commands.CommandSignatureMismatch):
        return OUT_OF_SYNC
    if isinstance(error, app_commands.TransformerError):
        return BAD_OPTION
    return None


def report_error(error: BaseException, where: str) -> str:
    """Log ``error`` as it deserves and return what to tell the user."""
    original = error.original if isinstance(error, app_commands.CommandInvokeError) else error
    message = describe_error(original)
    if message is None:
        log.error("Unexpected error in %s", where, exc_info=original)
        return render.GENERIC_ERROR
    if isinstance(original, DatabaseDamagedError):
        # The full message names the file on the host and how to repair it: for the log, not for members.
        log.error("%s: %s", where, original)
        return DAMAGED
    if isinstance(original, NewsQuoteError) and not isinstance(original, UserInputError):
        log.warning("%s: %s", where, original)
    return message


async def tell_privately(interaction: discord.Interaction[Any], text: str) -> None:
    """Answer ``interaction`` with a message only its user sees, whatever state its response is in."""
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(text, ephemeral=True)
            return
        if interaction.response.type is discord.InteractionResponseType.deferred_channel_message:
            # The first followup after a defer takes the defer's visibility: drop the placeholder to stay private.
            await interaction.delete_original_response()
        await interaction.followup.send(text, ephemeral=True)
    except discord.HTTPException:
        log.warning("Could not tell user %s: %s", interaction.user.id, text, exc_info=True)


def load_model_in_background(engine: Engine) -> threading.Thread:
    """Load the embedding model in a daemon thread, so the first question does not wait for it.

    Not in the event loop's executor: a stop must not wait for an import that cannot be interrupted and whose
    result nobody will use (``python -m bot`` exits without joining this thread).

    Then everything alive (torch, transformers, the model: some 460,000 objects) is frozen out of the garbage
    collector's reach: a full collection walks every tracked object holding the GIL, 0.5-0.9 s with the model
    loaded, and stalled the event loop that long whenever a worker thread's allocations set one off. What
    start-up made lives as long as the process and never needs walking again.
    """

    def load() -> None:
        collecting = gc.isenabled()
        gc.disable()  # importing torch and transformers would set off full collections of a growing heap
        try:
            _ = engine.embedder
        except Exception as error:
            # Questions will retry the load and each get this error's message; say it once here, loudly.
            log.error("Could not load the embedding model: %s", error)
        finally:
            gc.freeze()
            if collecting:
                gc.enable()

    thread = threading.Thread(target=load, name=MODEL_LOADER, daemon=True)
    thread.start()
    return thread


class NewsQuoteTree(app_commands.CommandTree["NewsQuoteBot"]):
    """The command tree, with the bot's single error handler."""

    async def on_error(
        self, interaction: discord.Interaction[NewsQuoteBot], error: app_commands.AppCommandError
    ) -> None:
        """Turn known errors into short private replies; log the rest and apologise."""
        command = interaction.command.qualified_name if interaction.command else "unknown command"
        where = f"/{command} (server {interaction.guild_id}, user {interaction.user.id})"
        await tell_privately(interaction, report_error(error, where))

    async def interaction_check(self, interaction: discord.Interaction[NewsQuoteBot], /) -> bool:
        """Take no new command while stopping: say so, rather than leave the user waiting."""
        if not interaction.client.stopping:
            return True
        if interaction.type is discord.InteractionType.application_command:
            await tell_privately(interaction, RESTARTING)
        return False


class NewsQuoteBot(commands.Bot):
    """The bot: slash commands and mention answers over one engine."""

    def __init__(self, engine: Engine, settings: BotSettings, **options: Any) -> None:
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False  # no voice here: nothing to warn about
        super().__init__(
            command_prefix=commands.when_mentioned,  # unused: there are no prefix commands, see on_message
            intents=intents_for(settings),
            allowed_mentions=discord.AllowedMentions.none(),  # quoted articles must never ping anyone
            tree_cls=NewsQuoteTree,
            help_command=None,
            **options,
        )
        self.engine = engine
        self.settings = settings
        self.cooldowns = {
            "ask": Cooldowns(settings.ask_cooldown_seconds),
            "add": Cooldowns(settings.add_cooldown_seconds),
        }
        self.stopping = False
        self._stop_task: asyncio.Task[None] | None = None

    async def login(self, token: str) -> None:
        """Log in at the configured API (and remember the configured gateway for connecting)."""
        use_endpoints(self.settings.api_base_url, self.settings.gateway_url)
        await super().login(token)

    async def setup_hook(self) -> None:
        """Load the cogs, start loading the model in a worker thread, and push the slash commands to Discord."""
        for name in EXTENSIONS:
            await self.load_extension(name)
        # The first question should not wait seconds for the model; loading it must not block the gateway either.
        load_model_in_background(self.engine)
        if self.settings.sync_commands:
            await self.sync_commands()

    async def sync_commands(self) -> list[app_commands.AppCommand]:
        """Sync to the development server when one is set (instant), else globally (may take an hour)."""
        if self.settings.dev_guild_id is None:
            synced = await self.tree.sync()
        else:
            guild = discord.Object(self.settings.dev_guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
        scope = f"server {self.settings.dev_guild_id}" if self.settings.dev_guild_id else "globally"
        log.info("Synced %d commands %s", len(synced), scope)
        return synced

    async def on_message(self, message: discord.Message, /) -> None:
        """Skip prefix-command processing: the ask cog's listener answers mentions."""

    def dispatch(self, event_name: str, /, *args: Any, **kwargs: Any) -> None:
        """Dispatch events as usual, except messages while stopping (no new questions by mention)."""
        if self.stopping and event_name == "message":
            return
        super().dispatch(event_name, *args, **kwargs)

    def stop_on_signals(self, *signals: signal.Signals) -> None:
        """Stop cleanly on these signals (SIGTERM from hosts and containers, SIGINT from Ctrl-C)."""
        loop = asyncio.get_running_loop()
        for sig in signals:
            with suppress(NotImplementedError):  # Windows: Ctrl-C then raises KeyboardInterrupt instead
                loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._stop_task is None:
            log.info("Received %s: stopping", sig.name)
            self._stop_task = asyncio.create_task(self.stop(), name="stop")
        else:  # asked twice: the user does not want to wait for work in flight
            log.info("Received %s again: cancelling work in flight", sig.name)
            for task in _work_in_flight():
                task.cancel()

    async def stop(self, grace: float = SHUTDOWN_GRACE_SECONDS) -> None:
        """Take no new work, give the commands in flight ``grace`` seconds to answer, cancel the rest, disconnect.

        A cancelled command's engine call still finishes in its worker thread (``asyncio.run`` waits for
        them) before ``python -m bot`` closes the database: a write is never cut short.
        """
        self.stopping = True
        if work := _work_in_flight():
            log.info("Waiting up to %.0f s for %d commands in flight", grace, len(work))
            _, late = await asyncio.wait(work, timeout=grace)
            if late:
                log.warning("Cancelling %d commands still running after %.0f s", len(late), grace)
                for task in late:
                    task.cancel()
                await asyncio.wait(late, timeout=1.0)
        await self.close()

    async def on_ready(self) -> None:
        log.info("Logged in as %s, in %d servers", self.user, len(self.guilds))


class ShardedNewsQuoteBot(NewsQuoteBot, commands.AutoShardedBot):
    """The same bot on discord.py's sharded client: this process serves only ``settings.shard_ids``."""


def create_bot(engine: Engine, settings: BotSettings, **options: Any) -> NewsQuoteBot:
    """Build the bot, sharded when the settings name a shard count (several processes then serve one bot)."""
    if settings.shard_count is None:
        return NewsQuoteBot(engine, settings, **options)
    return ShardedNewsQuoteBot(
        engine, settings, shard_count=settings.shard_count, shard_ids=settings.shard_ids, **options
    )


def _work_in_flight() -> set[asyncio.Task[Any]]:
    return {task for task in asyncio.all_tasks() if task.get_name().startswith(WORK_TASKS) and not task.done()}
