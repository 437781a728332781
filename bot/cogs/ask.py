"""``/ask`` and the mention flow: questions answered with quoted excerpts."""

from __future__ import annotations

import asyncio
import re

import discord
from discord import app_commands
from discord.ext import commands

from bot import checks, render
from bot.client import NewsQuoteBot, report_error
from index.models import Answer
from index.service import MAX_QUESTION_CHARS


class Ask(commands.Cog):
    """Answer questions from this server's articles, by slash command or by mention."""

    def __init__(self, bot: NewsQuoteBot) -> None:
        self.bot = bot

    @app_commands.command()
    @app_commands.guild_only()
    @app_commands.describe(question="What you want to know, in your own words", private="Only you see the answer")
    @checks.cooldown("ask")
    async def ask(
        self,
        interaction: discord.Interaction[NewsQuoteBot],
        question: app_commands.Range[str, 1, MAX_QUESTION_CHARS],
        private: bool = False,
    ) -> None:
        """Answer a question with quotes from this server's articles."""
        collection = checks.guild_collection(interaction)
        await interaction.response.defer(ephemeral=private, thinking=True)
        answer = await self.answer(question, collection)
        for reply in render.answer_replies(answer):
            await interaction.followup.send(**reply.kwargs(), ephemeral=private)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """Answer, in a reply, a message that mentions the bot or replies to one of its messages."""
        me = self.bot.user
        if message.author.bot or me is None:
            return
        if message.guild is None:
            await message.reply(render.DIRECT_MESSAGE_REFUSAL)
            return
        mentioned = any(user.id == me.id for user in message.mentions)
        if not (mentioned or _replies_to(message, me.id)):
            return
        question = " ".join(re.sub(rf"<@!?{me.id}>", " ", message.content).split())
        if not question:  # a bare mention, or a reply whose text we may not read (no Message Content intent)
            if mentioned:
                await message.reply(render.EMPTY_MENTION)
            return
        try:
            self.bot.cooldowns["ask"].hit(message.author.id)
            async with message.channel.typing():
                answer = await self.answer(question, checks.collection_for(message.guild.id))
            for reply in render.answer_replies(answer):
                await message.reply(**reply.kwargs())
        except Exception as exc:
            await message.reply(report_error(exc, f"mention (server {message.guild.id}, user {message.author.id})"))

    async def answer(self, question: str, collection: str) -> Answer:
        """Ask the engine, off the event loop."""
        return await asyncio.to_thread(self.bot.engine.ask, question, collection, self.bot.settings.excerpts)


def _replies_to(message: discord.Message, user_id: int) -> bool:
    replied = message.reference.resolved if message.reference else None
    return isinstance(replied, discord.Message) and replied.author.id == user_id


async def setup(bot: NewsQuoteBot) -> None:
    await bot.add_cog(Ask(bot))
