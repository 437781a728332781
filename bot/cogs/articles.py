"""Managing a server's articles: ``/add url|text|file``, "Add article" on a message, ``/watch``, ``/articles``,
``/remove``, ``/stats``."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import re
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import checks, render
from bot.client import NewsQuoteBot, report_error, tell_privately
from index import Engine
from index.errors import NewsQuoteError, TooLargeError, UnsupportedContentError, UserInputError
from index.ids import looks_like_id, parse_article_id
from index.models import AddResult, Article
from index.sources import FILE_KINDS

log = logging.getLogger(__name__)

MAX_PASTE = 4000  # Discord's longest text input in a form
MAX_TITLE = 200
PAGER_TIMEOUT = 600.0
PASTE_TIMEOUT = 1800.0  # time to copy an article and paste it into the form
MAX_LINKS = 5  # links added from one message; each is a fetch of up to NEWSQUOTE_FETCH_TIMEOUT seconds
_LINK = re.compile(r"https?://[^\s<>|\[\]\"'`]+", re.IGNORECASE)
_LINK_TAIL = ".,:;!?)*_~>'\""  # punctuation and Markdown that end a sentence, not a URL


def check_attachment(attachment: discord.Attachment, limit: int) -> None:
    """Refuse an upload by its name and size, before downloading it."""
    suffix = Path(attachment.filename).suffix.lower()
    if suffix not in FILE_KINDS:
        kinds = ", ".join(sorted(FILE_KINDS))
        raise UnsupportedContentError(f"Unsupported file type '{suffix or attachment.filename}': use {kinds}.")
    if attachment.size > limit:
        raise TooLargeError(f"{attachment.filename} is {attachment.size:,} bytes; the limit is {limit:,}.")


def links_in(text: str) -> list[str]:
    """The distinct http(s) links of a message, in order (``<url>`` and Markdown ``[text](url)`` included)."""
    links = []
    for match in _LINK.finditer(text):
        link = match.group().rstrip(_LINK_TAIL)
        if link.count("(") > link.count(")") and match.group()[len(link) :].startswith(")"):
            link += ")"  # a Wikipedia-style URL that ends in its own parenthesis
        if "://" in link and link.split("://", 1)[1]:
            links.append(link)
    return list(dict.fromkeys(links))


def find_article(engine: Engine, ref: str, collection: str) -> Article:
    """Resolve what was typed or picked: an article number (``12``, ``#12``) or a title that matches one article."""
    ref = ref.strip()
    if looks_like_id(ref):
        return engine.article(parse_article_id(ref, collection), collection)
    matches = engine.find_articles(ref, collection, limit=2)
    if len(matches) != 1:
        raise UserInputError(f"No single article matches '{render.truncate(ref, 100)}': pick one from the list.")
    return matches[0]


async def article_choices(
    engine: Engine, interaction: discord.Interaction[Any], current: str
) -> list[app_commands.Choice[str]]:
    """Autocomplete an article option: the server's articles whose title contains what was typed."""
    if interaction.guild_id is None:
        return []
    collection = checks.collection_for(interaction.guild_id)
    found = await asyncio.to_thread(engine.find_articles, current.strip(), collection, 25)
    return [app_commands.Choice(name=render.choice_name(a), value=str(a.id)) for a in found]


def add_links(engine: Engine, links: list[str], collection: str, added_by: str) -> list[tuple[str, AddResult | str]]:
    """Add each link as an article (in the calling worker thread); a refusal is kept as its message.

    The links go to ``Engine.add_all``, so that the model gets their articles together. An error that is not one
    link's (the model, the database) is the outcome of every link not yet added.
    """
    outcomes: list[tuple[str, AddResult | str]] = []
    try:
        readers = [functools.partial(engine.read_url, link, collection) for link in links]
        for link, outcome in zip(links, engine.add_all(readers, collection, added_by=added_by), strict=True):
            outcomes.append((link, str(outcome) if isinstance(outcome, NewsQuoteError) else outcome))
    except NewsQuoteError as exc:
        outcomes.extend((link, str(exc)) for link in links[len(outcomes) :])
    except Exception:
        log.exception("Could not add %s from a message", ", ".join(links[len(outcomes) :]))
        outcomes.extend((link, render.GENERIC_ERROR) for link in links[len(outcomes) :])
    return outcomes


class ArticlesView(discord.ui.View):
    """Buttons paging through a server's articles, newest first."""

    def __init__(self, engine: Engine, collection: str, per_page: int) -> None:
        super().__init__(timeout=PAGER_TIMEOUT)
        self.engine, self.collection, self.per_page = engine, collection, per_page
        self.page, self.pages = 0, 1
        self.origin: discord.Interaction[Any] | None = None  # the /articles interaction, to edit on timeout

    def _fetch(self, page: int) -> tuple[int, int, list[Article]]:
        total = self.engine.article_count(self.collection)
        self.pages = max(1, math.ceil(total / self.per_page))
        page = min(max(page, 0), self.pages - 1)  # articles may have gone since the last click
        return total, page, self.engine.articles(self.collection, limit=self.per_page, offset=page * self.per_page)

    async def load(self, page: int) -> discord.Embed:
        """Fetch a page off the event loop and set the buttons for it."""
        total, self.page, articles = await asyncio.to_thread(self._fetch, page)
        self.newer.disabled = self.page == 0
        self.older.disabled = self.page >= self.pages - 1
        return render.articles_page(articles, self.page, self.pages, total)

    async def show(self, interaction: discord.Interaction[Any], page: int) -> None:
        embed = await self.load(page)
        await interaction.response.edit_message(embed=embed, view=self)

    @discord.ui.button(label="Newer", emoji="\N{BLACK LEFT-POINTING TRIANGLE}")
    async def newer(self, interaction: discord.Interaction[Any], _button: discord.ui.Button[ArticlesView]) -> None:
        await self.show(interaction, self.page - 1)

    @discord.ui.button(label="Older", emoji="\N{BLACK RIGHT-POINTING TRIANGLE}")
    async def older(self, interaction: discord.Interaction[Any], _button: discord.ui.Button[ArticlesView]) -> None:
        await self.show(interaction, self.page + 1)

    async def on_timeout(self) -> None:
        if self.origin is not None:
            with suppress(discord.HTTPException):
                await self.origin.edit_original_response(view=None)

    async def on_error(
        self, interaction: discord.Interaction[Any], error: Exception, _item: discord.ui.Item[Any]
    ) -> None:
        await tell_privately(interaction, report_error(error, f"articles pager (server {interaction.guild_id})"))


class PasteArticle(discord.ui.Modal, title="Add an article"):
    """A form with a multi-line box, so that pasted paragraphs keep their line breaks (a command option has none)."""

    headline: discord.ui.TextInput[PasteArticle] = discord.ui.TextInput(
        label="Title (optional)", required=False, max_length=MAX_TITLE, placeholder="Default: the article's headline"
    )
    content: discord.ui.TextInput[PasteArticle] = discord.ui.TextInput(
        label="Article text",
        style=discord.TextStyle.paragraph,
        max_length=MAX_PASTE,
        placeholder="Paste the article here, up to 4,000 characters. For a longer one, use /add file.",
    )

    def __init__(self, cog: Articles, title: str | None) -> None:
        super().__init__(timeout=PASTE_TIMEOUT)
        self.cog = cog
        if title:
            self.headline.default = title

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        await self.cog._add(
            interaction, self.cog.bot.engine.add_text, self.content.value, title=self.headline.value.strip() or None
        )

    async def on_error(self, interaction: discord.Interaction[Any], error: Exception, /) -> None:  # type: ignore[override]
        await tell_privately(interaction, report_error(error, f"/add text form (server {interaction.guild_id})"))


class Articles(commands.Cog):
    """Add, list and remove the articles a server's questions are answered from."""

    add = app_commands.Group(name="add", description="Add an article to this server's index", guild_only=True)
    watch = app_commands.Group(
        name="watch",
        description="Add the links posted in a channel by themselves (admins)",
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),  # hidden from others; the check stays
    )

    def __init__(self, bot: NewsQuoteBot) -> None:
        self.bot = bot
        # Right-click a message > Apps > Add article. A context menu cannot be declared in a cog's body.
        self.add_from_message = app_commands.ContextMenu(
            name="Add article", callback=self._add_from_message, type=discord.AppCommandType.message
        )
        self.add_from_message.guild_only = True
        self.watched: dict[int, str] = {}  # channel id -> collection

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.add_from_message)
        watched = await asyncio.to_thread(self.bot.engine.watched_channels)
        self.watched = {int(channel): collection for channel, collection in watched.items()}

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.add_from_message.name, type=self.add_from_message.type)

    async def _add_from_message(self, interaction: discord.Interaction[NewsQuoteBot], message: discord.Message) -> None:
        """Add every link of a message (up to MAX_LINKS), telling the user privately what became of each."""
        collection = checks.guild_collection(interaction)
        self.bot.cooldowns["add"].hit(interaction.user.id)
        links = links_in(message.content)
        if not links:
            await interaction.response.send_message(render.links_added([]), ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        added_by = str(interaction.user.id)
        outcomes = await asyncio.to_thread(add_links, self.bot.engine, links[:MAX_LINKS], collection, added_by)
        await interaction.edit_original_response(content=render.links_added(outcomes, len(links[MAX_LINKS:])))

    @commands.Cog.listener("on_message")
    async def add_watched_links(self, message: discord.Message) -> None:
        """Add the links posted in a watched channel; reply with what was added or refused (not with duplicates)."""
        collection = self.watched.get(message.channel.id)
        if collection is None or message.author.bot or message.guild is None:
            return
        links = links_in(message.content)
        if not links:
            return
        try:
            added_by = str(message.author.id)
            outcomes = await asyncio.to_thread(add_links, self.bot.engine, links[:MAX_LINKS], collection, added_by)
            if all(isinstance(o, AddResult) and o.duplicate for _, o in outcomes):
                return
            await message.reply(render.links_added(outcomes, len(links[MAX_LINKS:])))
        except Exception as exc:
            log.warning("Watched channel %s: %s", message.channel.id, report_error(exc, "watched channel"))

    @watch.command(name="on")
    @app_commands.describe(channel="The channel to watch (default: this one)")
    @checks.admin_only("watch a channel")
    async def watch_on(
        self, interaction: discord.Interaction[NewsQuoteBot], channel: discord.TextChannel | None = None
    ) -> None:
        """Add the links posted in a channel as articles, as they are posted."""
        await self._watch(interaction, channel, on=True)

    @watch.command(name="off")
    @app_commands.describe(channel="The channel to stop watching (default: this one)")
    @checks.admin_only("stop watching a channel")
    async def watch_off(
        self, interaction: discord.Interaction[NewsQuoteBot], channel: discord.TextChannel | None = None
    ) -> None:
        """Stop adding the links posted in a channel."""
        await self._watch(interaction, channel, on=False)

    @watch.command(name="list")
    async def watch_list(self, interaction: discord.Interaction[NewsQuoteBot]) -> None:
        """List the channels whose links are added by themselves."""
        collection = checks.guild_collection(interaction)
        channels = [f"<#{c}>" for c, name in sorted(self.watched.items()) if name == collection]
        await interaction.response.send_message(render.watching(channels), ephemeral=True)

    async def _watch(
        self, interaction: discord.Interaction[NewsQuoteBot], channel: discord.TextChannel | None, on: bool
    ) -> None:
        collection = checks.guild_collection(interaction)
        if on and not self.bot.settings.message_content:
            raise checks.Refused(render.WATCH_NEEDS_CONTENT)
        channel_id = channel.id if channel is not None else interaction.channel_id
        if channel_id is None:
            raise checks.Refused("Name the channel to watch.")
        added_by = str(interaction.user.id)
        await asyncio.to_thread(self.bot.engine.watch, collection, str(channel_id), on, added_by)
        if on:
            self.watched[channel_id] = collection
        elif self.watched.get(channel_id) == collection:
            del self.watched[channel_id]
        said = "Watching" if on else "No longer watching"
        await interaction.response.send_message(
            f"{said} <#{channel_id}>: "
            + ("links posted there are added as articles." if on else "its links are added only by hand."),
            ephemeral=True,
        )

    @add.command(name="url")
    @app_commands.describe(url="The article's web address (http:// or https://)", title="A title (default: the page's)")
    @checks.cooldown("add")
    async def add_url(
        self,
        interaction: discord.Interaction[NewsQuoteBot],
        url: str,
        title: app_commands.Range[str, 1, MAX_TITLE] | None = None,
    ) -> None:
        """Fetch a web page and add its article."""
        await self._add(interaction, self.bot.engine.add_url, url, title=title)

    @add.command(name="text")
    @app_commands.describe(title="A title to fill in (you can also type it in the form)")
    @checks.cooldown("add")
    async def add_text(
        self, interaction: discord.Interaction[NewsQuoteBot], title: app_commands.Range[str, 1, MAX_TITLE] | None = None
    ) -> None:
        """Paste an article's text into a form (up to 4,000 characters; longer ones as /add file)."""
        checks.guild_collection(interaction)
        await interaction.response.send_modal(PasteArticle(self, title))

    @add.command(name="file")
    @app_commands.describe(attachment="A .txt, .md or .html file", title="A title (default: the file's own)")
    @checks.cooldown("add")
    async def add_file(
        self,
        interaction: discord.Interaction[NewsQuoteBot],
        attachment: discord.Attachment,
        title: app_commands.Range[str, 1, 200] | None = None,
    ) -> None:
        """Add an uploaded .txt, .md or .html file as an article."""
        check_attachment(attachment, self.bot.engine.settings.max_download_bytes)
        await interaction.response.defer(ephemeral=True, thinking=True)
        data = await attachment.read()
        await self._add(interaction, self.bot.engine.add_bytes, data, attachment.filename, title=title)

    async def _add(
        self, interaction: discord.Interaction[NewsQuoteBot], add: Callable[..., AddResult], *args: Any, **kwargs: Any
    ) -> None:
        """Run an engine ``add_*`` off the event loop, then edit the deferred reply with what happened."""
        collection = checks.guild_collection(interaction)
        if not interaction.response.is_done():
            await interaction.response.defer(ephemeral=True, thinking=True)
        added_by = str(interaction.user.id)
        result = await asyncio.to_thread(add, *args, collection=collection, added_by=added_by, **kwargs)
        await interaction.edit_original_response(content=render.added(result))

    @app_commands.command()
    @app_commands.guild_only()
    async def articles(self, interaction: discord.Interaction[NewsQuoteBot]) -> None:
        """List this server's articles, newest first."""
        view = ArticlesView(self.bot.engine, checks.guild_collection(interaction), self.bot.settings.articles_per_page)
        embed = await view.load(0)
        if view.pages == 1:  # nothing to page through: no buttons
            await interaction.response.send_message(embed=embed, ephemeral=True)
            return
        view.origin = interaction
        await interaction.response.send_message(embed=embed, view=view, ephemeral=True)

    @app_commands.command()
    @app_commands.guild_only()
    @app_commands.describe(article="Start typing its title, or give its number")
    async def remove(self, interaction: discord.Interaction[NewsQuoteBot], article: str) -> None:
        """Remove an article from this server's index (admins, or whoever added it)."""
        collection = checks.guild_collection(interaction)
        found = await asyncio.to_thread(find_article, self.bot.engine, article, collection)
        checks.ensure_can_remove(interaction, found)
        await interaction.response.defer(ephemeral=True, thinking=True)
        gone = await asyncio.to_thread(self.bot.engine.remove, found.id, collection)
        await interaction.edit_original_response(content=render.removed(gone))

    @remove.autocomplete("article")
    async def remove_autocomplete(
        self, interaction: discord.Interaction[NewsQuoteBot], current: str
    ) -> list[app_commands.Choice[str]]:
        return await article_choices(self.bot.engine, interaction, current)

    @app_commands.command()
    @app_commands.guild_only()
    async def stats(self, interaction: discord.Interaction[NewsQuoteBot]) -> None:
        """Show this server's articles, chunks, model, sizes, and the share of answers voted 👍 lately."""
        result = await asyncio.to_thread(self.bot.engine.stats, checks.guild_collection(interaction))
        await interaction.response.send_message(embed=render.stats(result), ephemeral=True)


async def setup(bot: NewsQuoteBot) -> None:
    await bot.add_cog(Articles(bot))
