"""Posting an answer with its buttons (More, Open thread, 👍, 👎), and what the buttons do.

The buttons are persistent: their custom ids carry the answer's id (``nq:vote:up:<id>``), and the classes that
handle them are registered at start-up (``DynamicItem``), so a button keeps working after a restart. What an
answer quoted is kept in the database (``Engine.record_answer``), never in memory.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, cast

import discord

from bot import checks, render
from bot.client import NewsQuoteBot, report_error, tell_privately
from index.feedback import Votes
from index.models import Answer

log = logging.getLogger(__name__)

UP, DOWN = "\N{THUMBS UP SIGN}", "\N{THUMBS DOWN SIGN}"
THREAD_TYPES = (discord.ChannelType.public_thread, discord.ChannelType.private_thread, discord.ChannelType.news_thread)

Send = Callable[..., Awaitable[discord.Message]]


def answer_view(
    answer_id: int, votes: Votes | None = None, *, more: bool = True, thread: bool = True
) -> discord.ui.View:
    """The buttons under an answer; ``more`` and ``thread`` say whether those two are still offered."""
    votes = votes or Votes()
    view = discord.ui.View(timeout=None)
    if more:
        view.add_item(MoreButton(answer_id))
    if thread:
        view.add_item(ThreadButton(answer_id))
    view.add_item(VoteButton(answer_id, up=True, count=votes.up))
    view.add_item(VoteButton(answer_id, up=False, count=votes.down))
    return view


def in_thread(channel: object) -> bool:
    return getattr(channel, "type", None) in THREAD_TYPES


async def post_answer(
    bot: NewsQuoteBot,
    answer: Answer,
    send: Send,
    *,
    channel_id: int,
    asked_by: int,
    parent_id: int | None = None,
    threadable: bool = True,
    lead: str | None = None,
) -> list[discord.Message]:
    """Send an answer; when it quotes anything, record it and put its buttons under its last message."""
    replies = render.answer_replies(answer, lead=lead)
    if not answer.results:  # nothing quoted: nothing to vote on, nothing more to show
        return [await send(**reply.kwargs()) for reply in replies]
    engine = bot.engine
    answer_id = await asyncio.to_thread(engine.record_answer, answer, asked_by=str(asked_by), parent_id=parent_id)
    messages = []
    for n, reply in enumerate(replies, 1):
        extra = {"view": answer_view(answer_id, thread=threadable)} if n == len(replies) else {}
        messages.append(await send(**reply.kwargs(), **extra))
    await asyncio.to_thread(engine.note_messages, answer_id, str(channel_id), [str(m.id) for m in messages])
    return messages


def _offered(message: discord.Message | None) -> dict[str, bool]:
    """Which of More and Open thread a message's buttons still offer."""
    ids = [
        getattr(child, "custom_id", None) or ""
        for row in (message.components if message else [])
        for child in getattr(row, "children", [])
    ]
    return {kind: any(i.startswith(f"nq:{kind}:") for i in ids) for kind in ("more", "thread")}


class AnswerButton(discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=r"nq:(?P<kind>[a-z]+)"):
    """A button of an answer; subclasses set the template, the look and ``act``."""

    def __init__(self, answer_id: int, button: discord.ui.Button[discord.ui.View]) -> None:
        super().__init__(button)
        self.answer_id = answer_id

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Run ``act``; tell the presser privately what went wrong, if anything did."""
        bot = cast(NewsQuoteBot, interaction.client)
        try:
            await self.act(interaction, bot, checks.guild_collection(interaction))
        except Exception as error:
            where = f"{self.custom_id} (server {interaction.guild_id}, user {interaction.user.id})"
            await tell_privately(interaction, report_error(error, where))

    async def act(self, interaction: discord.Interaction[Any], bot: NewsQuoteBot, collection: str) -> None:
        raise NotImplementedError

    async def redraw(
        self, interaction: discord.Interaction[Any], bot: NewsQuoteBot, votes: Votes | None = None, **offer: bool
    ) -> None:
        """Answer the click by redrawing the answer's buttons: current counts, and ``offer`` overriding the rest."""
        if votes is None:
            votes = await asyncio.to_thread(bot.engine.votes, self.answer_id)
        await interaction.response.edit_message(
            view=answer_view(self.answer_id, votes, **(_offered(interaction.message) | offer))
        )


class VoteButton(AnswerButton, template=r"nq:vote:(?P<way>up|down):(?P<id>[0-9]{1,19})"):
    """👍 or 👎: anyone may vote, once per answer; pressing the other one changes the vote."""

    def __init__(self, answer_id: int, up: bool, count: int = 0) -> None:
        super().__init__(
            answer_id,
            discord.ui.Button(
                emoji=UP if up else DOWN,
                label=f"{count:,}" if count else None,
                style=discord.ButtonStyle.secondary,
                custom_id=f"nq:vote:{'up' if up else 'down'}:{answer_id}",
            ),
        )
        self.up = up

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> VoteButton:
        return cls(int(match["id"]), match["way"] == "up")

    async def act(self, interaction: discord.Interaction[Any], bot: NewsQuoteBot, collection: str) -> None:
        voter = str(interaction.user.id)
        votes = await asyncio.to_thread(bot.engine.vote, self.answer_id, collection, voter, self.up)
        await self.redraw(interaction, bot, votes)


class MoreButton(AnswerButton, template=r"nq:more:(?P<id>[0-9]{1,19})"):
    """Post the next excerpts for the same question, as a new answer with its own buttons."""

    def __init__(self, answer_id: int) -> None:
        super().__init__(
            answer_id,
            discord.ui.Button(label="More", style=discord.ButtonStyle.primary, custom_id=f"nq:more:{answer_id}"),
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> MoreButton:
        return cls(int(match["id"]))

    async def act(self, interaction: discord.Interaction[Any], bot: NewsQuoteBot, collection: str) -> None:
        more = await asyncio.to_thread(bot.engine.more, self.answer_id, collection, bot.settings.excerpts)
        await self.redraw(interaction, bot, more=False)  # pressed once: the next batch has its own More
        if not more.results:
            await interaction.followup.send(render.NO_MORE, ephemeral=True)
            return
        private = bool(interaction.message and interaction.message.flags.ephemeral)

        async def send(**kwargs: Any) -> discord.Message:
            return await interaction.followup.send(**kwargs, ephemeral=private, wait=True)

        await post_answer(
            bot,
            more,
            send,
            channel_id=interaction.channel_id or 0,
            asked_by=interaction.user.id,
            parent_id=self.answer_id,
            threadable=not private and not in_thread(interaction.channel),
            lead=render.more_lead(more.question),
        )


class ThreadButton(AnswerButton, template=r"nq:thread:(?P<id>[0-9]{1,19})"):
    """Start a thread on the answer; questions asked in it are follow-ups of the answer."""

    def __init__(self, answer_id: int) -> None:
        super().__init__(
            answer_id,
            discord.ui.Button(
                label="Open thread", style=discord.ButtonStyle.secondary, custom_id=f"nq:thread:{answer_id}"
            ),
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> ThreadButton:
        return cls(int(match["id"]))

    async def act(self, interaction: discord.Interaction[Any], bot: NewsQuoteBot, collection: str) -> None:
        record = await asyncio.to_thread(bot.engine.answer_record, self.answer_id, collection)
        message = interaction.message
        if message is None:
            return
        try:
            thread = await message.create_thread(name=render.thread_name(record.question))
        except discord.HTTPException as exc:
            log.info("No thread on answer %s: %s", self.answer_id, exc)
            await tell_privately(interaction, render.NO_THREAD)
            return
        await self.redraw(interaction, bot, thread=False)
        me = bot.user.mention if bot.user else "me"
        await thread.send(render.thread_intro(me, bot.settings.message_content))


BUTTONS = (VoteButton, MoreButton, ThreadButton)
