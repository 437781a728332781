"""``/feed add|list|remove``: the RSS and Atom feeds a server follows, and the task that polls them."""

from __future__ import annotations

import asyncio
import logging
import threading
from contextlib import suppress

import discord
from discord import app_commands
from discord.ext import commands

from bot import checks, render
from bot.client import NewsQuoteBot
from index import Engine
from index.errors import FeedNotFoundError, UserInputError
from index.feeds import parse_feed_id
from index.ids import looks_like_id
from index.models import Feed, FeedPoll

log = logging.getLogger(__name__)

TICK_SECONDS = 60.0  # how often the poller looks for feeds that are due: at most this late
MAX_URL = 2000


def find_feed(engine: Engine, ref: str, collection: str) -> Feed:
    """Resolve what was typed or picked: a feed number (``3``, ``#3``) or a title or URL matching one feed."""
    ref = ref.strip()
    if looks_like_id(ref):
        return engine.feed(parse_feed_id(ref), collection)
    needle = ref.casefold()
    matches = [f for f in engine.feeds(collection) if needle in f"{f.title or ''} {f.url}".casefold()]
    if len(matches) != 1:
        raise UserInputError(f"No single feed matches '{render.truncate(ref, 100)}': pick one from the list.")
    return matches[0]


class Feeds(commands.Cog):
    """Follow feeds; poll them in the background and add their new articles."""

    # Discord shows or hides a whole command, not a subcommand: members without Manage Server see none of /feed.
    # A server can show it to more roles (Server Settings > Integrations); adding and removing stay admins' only.
    feed = app_commands.Group(
        name="feed",
        description="RSS and Atom feeds whose new articles are added by themselves",
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )

    def __init__(self, bot: NewsQuoteBot) -> None:
        self.bot = bot
        self.stopping = threading.Event()  # read by the worker thread between entries
        self.wake = asyncio.Event()
        self.polling = asyncio.Lock()
        self.task: asyncio.Task[None] | None = None

    async def cog_load(self) -> None:
        self.task = asyncio.create_task(self._run(), name="feed-poller")

    async def cog_unload(self) -> None:
        """Stop polling: a poll in its worker thread finishes the entry it is on, and leaves the rest for later."""
        self.stopping.set()
        if self.task is not None:
            self.task.cancel()
            with suppress(asyncio.CancelledError):
                await self.task

    @property
    def minutes(self) -> float:
        return self.bot.settings.feed_poll_minutes

    async def _run(self) -> None:
        await self.bot.wait_until_ready()
        while not self.stopping.is_set():
            try:
                await self.poll_due()
            except Exception:
                log.exception("Polling the feeds failed")
            with suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=min(TICK_SECONDS, self.minutes * 60))
            self.wake.clear()

    async def poll_due(self) -> list[FeedPoll]:
        """Poll the due feeds of the servers the bot is in, one at a time, off the event loop; announce new articles."""
        async with self.polling:
            collections = {checks.collection_for(guild.id) for guild in self.bot.guilds}
            due = await asyncio.to_thread(self.bot.engine.due_feeds, collections)
            polls = []
            for feed in due:
                if self.stopping.is_set():
                    break
                try:
                    poll = await asyncio.to_thread(
                        self.bot.engine.poll_feed, feed.id, feed.collection, self.minutes, self.stopping.is_set
                    )
                except FeedNotFoundError:  # removed since it was found due
                    continue
                except Exception:
                    log.exception("Polling feed #%s of %s failed", feed.id, feed.collection)
                    continue
                if poll.error:
                    log.info("Feed #%s of %s: %s", feed.id, feed.collection, poll.error)
                await self.announce(poll)
                polls.append(poll)
            return polls

    async def announce(self, poll: FeedPoll) -> None:
        """Post "Added: <title>" for each new article in the feed's channel, if it has one."""
        feed = poll.feed
        if not feed.notify or not poll.added or not feed.notify.isdigit():
            return
        channel = self.bot.get_channel(int(feed.notify))
        guild = getattr(channel, "guild", None)
        if not isinstance(channel, discord.abc.Messageable) or guild is None:
            log.warning("Feed #%s: channel %s is gone or not one I can post in", feed.id, feed.notify)
            return
        if checks.collection_for(guild.id) != feed.collection:
            return  # never announce one server's articles in another
        try:
            for message in render.feed_announcements(feed, poll.added):
                await channel.send(message)
        except discord.HTTPException as error:
            log.warning("Feed #%s: could not announce in channel %s: %s", feed.id, feed.notify, error)

    @feed.command(name="add")
    @app_commands.describe(
        url="The feed's address (RSS or Atom), e.g. https://example.com/feed.xml",
        channel="Where to announce each new article (default: nowhere)",
    )
    @checks.admin_only("follow feeds")
    async def add(
        self,
        interaction: discord.Interaction[NewsQuoteBot],
        url: app_commands.Range[str, 1, MAX_URL],
        channel: discord.TextChannel | None = None,
    ) -> None:
        """Follow an RSS or Atom feed: its new articles are added by themselves (admins)."""
        collection = checks.guild_collection(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        notify = str(channel.id) if channel else None
        engine = self.bot.engine
        result = await asyncio.to_thread(engine.add_feed, url, collection, str(interaction.user.id), notify)
        per_poll = engine.settings.feed_articles_per_poll
        await interaction.edit_original_response(content=render.feed_followed(result, per_poll, self.minutes))
        if not result.duplicate:
            self.wake.set()  # its first articles now, not at the next tick

    @feed.command(name="list")
    async def list_feeds(self, interaction: discord.Interaction[NewsQuoteBot]) -> None:
        """Show the feeds this server follows: articles added, last success, last error, limits."""
        feeds = await asyncio.to_thread(self.bot.engine.feeds, checks.guild_collection(interaction))
        settings = self.bot.engine.settings
        embed = render.feeds_list(feeds, settings.max_feeds, settings.feed_articles_per_poll, self.minutes)
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @feed.command(name="remove")
    @app_commands.describe(feed="Start typing its title, or give its number")
    @checks.admin_only("stop following feeds")
    async def remove(self, interaction: discord.Interaction[NewsQuoteBot], feed: str) -> None:
        """Stop following a feed; the articles it brought stay (admins)."""
        collection = checks.guild_collection(interaction)
        found = await asyncio.to_thread(find_feed, self.bot.engine, feed, collection)
        gone = await asyncio.to_thread(self.bot.engine.remove_feed, found.id, collection)
        await interaction.response.send_message(render.feed_removed(gone), ephemeral=True)

    @remove.autocomplete("feed")
    async def remove_autocomplete(
        self, interaction: discord.Interaction[NewsQuoteBot], current: str
    ) -> list[app_commands.Choice[str]]:
        if interaction.guild_id is None:
            return []
        feeds = await asyncio.to_thread(self.bot.engine.feeds, checks.collection_for(interaction.guild_id))
        needle = current.strip().casefold()
        found = [f for f in feeds if needle in f"#{f.id} {f.title or ''} {f.url}".casefold()]
        return [app_commands.Choice(name=render.feed_choice_name(f), value=str(f.id)) for f in found[:25]]


async def setup(bot: NewsQuoteBot) -> None:
    await bot.add_cog(Feeds(bot))
