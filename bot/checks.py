"""Who may do what, where: server-only use, admin rights, article ownership and per-user cooldowns."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import discord
from discord import app_commands

from index.models import Article

if TYPE_CHECKING:
    from bot.client import NewsQuoteBot

T = TypeVar("T")

NOT_IN_A_SERVER = "I only work inside a server: each server has its own articles. Use me there."


class Refused(app_commands.CheckFailure):
    """A check said no; ``str(error)`` tells the user why."""


class NotAdmin(Refused):
    def __init__(self, action: str) -> None:
        super().__init__(f"Only members with the Manage Server permission or an admin role can {action}.")


class NotYours(Refused):
    def __init__(self, article: Article) -> None:
        super().__init__(f"Article #{article.id} was added by someone else: only its adder or an admin can remove it.")


def collection_for(guild_id: int) -> str:
    """Name the engine collection that holds one server's articles."""
    return f"guild-{guild_id}"


def guild_collection(interaction: discord.Interaction[Any]) -> str:
    """Return the collection of the server the interaction comes from; refuse direct messages."""
    if interaction.guild_id is None:
        raise app_commands.NoPrivateMessage(NOT_IN_A_SERVER)
    return collection_for(interaction.guild_id)


def is_admin(interaction: discord.Interaction[NewsQuoteBot]) -> bool:
    """Return whether the user has Manage Server (in this channel) or one of the configured admin roles."""
    if interaction.permissions.manage_guild:
        return True
    roles = getattr(interaction.user, "roles", [])
    admin_roles = set(interaction.client.settings.admin_role_ids)
    return any(role.id in admin_roles for role in roles)


def admin_only(action: str) -> Callable[[T], T]:
    """Allow a command to admins only; others get an ephemeral refusal naming ``action``."""

    async def predicate(interaction: discord.Interaction[NewsQuoteBot]) -> bool:
        if not is_admin(interaction):
            raise NotAdmin(action)
        return True

    return app_commands.check(predicate)


def ensure_can_remove(interaction: discord.Interaction[NewsQuoteBot], article: Article) -> None:
    """Let admins remove any article and everyone else the articles they added."""
    if article.added_by != str(interaction.user.id) and not is_admin(interaction):
        raise NotYours(article)


class Cooldowns:
    """One use per ``seconds`` per user; shared by a slash command and its mention counterpart."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._buckets: dict[int, app_commands.Cooldown] = {}

    def hit(self, user_id: int) -> None:
        """Count one use; raise ``CommandOnCooldown`` if the user must wait."""
        if self.seconds <= 0:
            return
        if len(self._buckets) > 1000:  # forget users whose window has passed
            self._buckets = {k: b for k, b in self._buckets.items() if b.get_tokens() < b.rate}
        bucket = self._buckets.setdefault(user_id, app_commands.Cooldown(1, self.seconds))
        retry_after = bucket.update_rate_limit()
        if retry_after:
            raise app_commands.CommandOnCooldown(bucket, retry_after)


def cooldown(kind: str) -> Callable[[T], T]:
    """Apply the bot's per-user cooldown named ``kind`` ("ask" or "add") to a command."""

    async def predicate(interaction: discord.Interaction[NewsQuoteBot]) -> bool:
        interaction.client.cooldowns[kind].hit(interaction.user.id)
        return True

    return app_commands.check(predicate)
