"""The Discord client: engine and settings injected, cogs loaded, commands synced, one error handler."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import discord
import yarl
from discord import app_commands
from discord.ext import commands

from bot import render
from bot.checks import Cooldowns
from bot.settings import BotSettings
from index import Engine
from index.errors import NewsQuoteError, UserInputError

log = logging.getLogger(__name__)

EXTENSIONS = ("bot.cogs.ask", "bot.cogs.articles", "bot.cogs.admin")
OUT_OF_SYNC = "This command changed since Discord last synced it: try again in a minute."
BAD_OPTION = "I could not read one of the options you gave: check it and try again."


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


def _report_warm_up(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        # Questions will retry the load and each get this error's message; say it once here, loudly.
        log.error("Could not load the embedding model: %s", error)


class NewsQuoteTree(app_commands.CommandTree["NewsQuoteBot"]):
    """The command tree, with the bot's single error handler."""

    async def on_error(
        self, interaction: discord.Interaction[NewsQuoteBot], error: app_commands.AppCommandError
    ) -> None:
        """Turn known errors into short private replies; log the rest and apologise."""
        command = interaction.command.qualified_name if interaction.command else "unknown command"
        where = f"/{command} (server {interaction.guild_id}, user {interaction.user.id})"
        await tell_privately(interaction, report_error(error, where))


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

    async def login(self, token: str) -> None:
        """Log in at the configured API (and remember the configured gateway for connecting)."""
        use_endpoints(self.settings.api_base_url, self.settings.gateway_url)
        await super().login(token)

    async def setup_hook(self) -> None:
        """Load the cogs, start loading the model in a worker thread, and push the slash commands to Discord."""
        for name in EXTENSIONS:
            await self.load_extension(name)
        # The first question should not wait seconds for the model; loading it must not block the gateway either.
        self._warm_up = asyncio.create_task(asyncio.to_thread(lambda: self.engine.embedder), name="load-model")
        self._warm_up.add_done_callback(_report_warm_up)
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

    async def on_ready(self) -> None:
        log.info("Logged in as %s, in %d servers", self.user, len(self.guilds))
