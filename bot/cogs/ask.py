"""``/ask`` and the message flow: questions answered with quoted excerpts, follow-ups by reply or in a thread."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import checks, render
from bot.answers import BUTTONS, in_thread, post_answer
from bot.client import NewsQuoteBot, report_error
from bot.cogs.articles import article_choices, find_article
from index.feedback import AnswerRecord
from index.models import Answer
from index.service import MAX_QUESTION_CHARS


class Ask(commands.Cog):
    """Answer questions from this server's articles, by slash command, mention, reply or in a follow-up thread."""

    def __init__(self, bot: NewsQuoteBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        # The buttons of every answer ever posted, this run or an earlier one.
        self.bot.add_dynamic_items(*BUTTONS)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(*BUTTONS)

    @app_commands.command()
    @app_commands.guild_only()
    @app_commands.describe(
        question="What you want to know, in your own words",
        private="Only you see the answer",
        article="Ask one article only: start typing its title, or give its number",
    )
    @checks.cooldown("ask")
    async def ask(
        self,
        interaction: discord.Interaction[NewsQuoteBot],
        question: app_commands.Range[str, 1, MAX_QUESTION_CHARS],
        private: bool = False,
        article: str | None = None,
    ) -> None:
        """Answer a question with quotes from this server's articles."""
        collection = checks.guild_collection(interaction)
        scope = None
        if article is not None:
            scope = [(await asyncio.to_thread(find_article, self.bot.engine, article, collection)).id]
        await interaction.response.defer(ephemeral=private, thinking=True)
        engine, k = self.bot.engine, self.bot.settings.excerpts
        limit = {"articles": scope} if scope else {}
        answer = await asyncio.to_thread(engine.ask, question, collection, k, **limit)

        async def send(**kwargs: Any) -> discord.Message:
            return await interaction.followup.send(**kwargs, ephemeral=private, wait=True)

        await post_answer(
            self.bot,
            answer,
            send,
            channel_id=interaction.channel_id or 0,
            asked_by=interaction.user.id,
            threadable=not private and not in_thread(interaction.channel),
        )

    @ask.autocomplete("article")
    async def ask_article_autocomplete(
        self, interaction: discord.Interaction[NewsQuoteBot], current: str
    ) -> list[app_commands.Choice[str]]:
        return await article_choices(self.bot.engine, interaction, current)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """Answer a mention, a reply to the bot, or a question in a thread started on an answer, in a reply."""
        me = self.bot.user
        if message.author.bot or me is None:
            return
        if message.guild is None:
            await message.reply(render.DIRECT_MESSAGE_REFUSAL)
            return
        mentioned = any(user.id == me.id for user in message.mentions)
        replied_to = _replied_to(message, me.id)
        threaded = in_thread(message.channel) or isinstance(message.channel, discord.PartialMessageable)
        if not (mentioned or replied_to or threaded):
            return
        question = " ".join(re.sub(rf"<@!?{me.id}>", " ", message.content).split())
        if not question:  # a bare mention, or a message whose text we may not read (no Message Content intent)
            if mentioned:
                await message.reply(render.EMPTY_MENTION)
            return
        try:
            previous = await self.previous_answer(message, replied_to, threaded)
            if not (mentioned or replied_to or previous):
                return  # someone else's thread
            self.bot.cooldowns["ask"].hit(message.author.id)
            async with message.channel.typing():
                answer = await self.answer(question, checks.collection_for(message.guild.id), previous)
            await post_answer(
                self.bot,
                answer,
                message.reply,
                channel_id=message.channel.id,
                asked_by=message.author.id,
                threadable=not threaded,
            )
        except Exception as exc:
            await message.reply(report_error(exc, f"message (server {message.guild.id}, user {message.author.id})"))

    async def previous_answer(
        self, message: discord.Message, replied_to: int | None, threaded: bool
    ) -> AnswerRecord | None:
        """The answer a message follows up on: the one it replies to, else the latest in its thread."""
        engine = self.bot.engine
        if replied_to is not None:
            found = await asyncio.to_thread(engine.answer_for_message, str(replied_to))
            if found is not None:
                return found
        if threaded:
            return await asyncio.to_thread(engine.answer_in_thread, str(message.channel.id))
        return None

    async def answer(self, question: str, collection: str, previous: AnswerRecord | None = None) -> Answer:
        """Ask the engine, off the event loop; a follow-up prefers the articles the previous answer quoted."""
        engine, k = self.bot.engine, self.bot.settings.excerpts
        if previous is not None and previous.collection == collection:
            return await asyncio.to_thread(engine.follow_up, question, previous, k)
        return await asyncio.to_thread(engine.ask, question, collection, k)


def _replied_to(message: discord.Message, user_id: int) -> int | None:
    """The id of the message of ``user_id`` that ``message`` replies to, if it replies to one."""
    replied = message.reference.resolved if message.reference else None
    if isinstance(replied, discord.Message) and replied.author.id == user_id:
        return replied.id
    return None


async def setup(bot: NewsQuoteBot) -> None:
    await bot.add_cog(Ask(bot))
