"""Bot settings, read from the environment and `.env` (prefix ``DISCORD_``)."""

from __future__ import annotations

import logging
from typing import Annotated

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DISCORD_API = "https://discord.com/api/v10"
DISCORD_GATEWAY = "wss://gateway.discord.gg/"
MAX_ARTICLES_PER_PAGE = 10  # keeps a page of /articles under Discord's 6000 characters an embed


class BotSettings(BaseSettings):
    """Everything the Discord side needs; built once in ``main()`` and passed in."""

    model_config = SettingsConfigDict(env_prefix="DISCORD_", env_file=".env", extra="ignore")

    token: SecretStr = Field(description="The bot token from the Developer Portal (Bot > Reset Token).")
    api_base_url: str = Field(default=DISCORD_API, description="REST API base, for Discord-compatible servers.")
    gateway_url: str = Field(default=DISCORD_GATEWAY, description="Gateway WebSocket URL.")
    dev_guild_id: int | None = Field(default=None, description="Sync commands to this server only (instant).")
    sync_commands: bool = Field(default=True, description="Push the slash commands to Discord at start-up.")
    admin_role_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list, description="Roles allowed /remove and /rebuild besides Manage Server (comma-separated)."
    )
    message_content: bool = Field(
        default=False,
        description="Request the privileged Message Content intent, to answer replies that do not mention the bot.",
    )
    excerpts: int = Field(default=3, ge=1, le=10, description="Excerpts quoted per answer.")
    ask_cooldown_seconds: float = Field(default=5.0, ge=0, description="Per-user pause between questions.")
    add_cooldown_seconds: float = Field(default=15.0, ge=0, description="Per-user pause between /add commands.")
    articles_per_page: int = Field(
        default=10, ge=1, le=MAX_ARTICLES_PER_PAGE, description="Articles on a page of /articles."
    )
    progress_interval_seconds: float = Field(default=2.0, gt=0, description="Least time between progress edits.")
    feed_poll_minutes: float = Field(
        default=15.0, gt=0, description="Minutes between two polls of a feed (each wait jittered by 10%)."
    )
    log_level: str = Field(default="INFO", description="Logging level.")
    shard_count: int | None = Field(
        default=None, ge=1, description="Shards the bot runs as, across all its processes (unset: no sharding)."
    )
    shard_ids: Annotated[list[int] | None, NoDecode] = Field(
        default=None,
        description="Shards this process serves (comma-separated, each below DISCORD_SHARD_COUNT; unset: all of them).",
    )

    @field_validator("token")
    @classmethod
    def _token_not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("the token is empty")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in logging.getLevelNamesMapping():
            raise ValueError("use DEBUG, INFO, WARNING or ERROR")
        return value.upper()

    @field_validator("admin_role_ids", "shard_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        """Accept ``123,456`` and ``[123, 456]`` as well as a list."""
        if isinstance(value, str):
            return [part for part in value.strip().strip("[]").replace(" ", "").split(",") if part]
        return value

    @field_validator("shard_ids")
    @classmethod
    def _shards_exist(cls, value: list[int] | None, info: ValidationInfo) -> list[int] | None:
        """Refuse shard ids without a shard count, out of range, or twice (a count that failed reports itself)."""
        if not value or "shard_count" not in info.data:
            return value or None  # empty, as in ``DISCORD_SHARD_IDS=``: unset
        count = info.data["shard_count"]
        if count is None:
            raise ValueError("set DISCORD_SHARD_COUNT too: shard ids only mean something with a shard count")
        if bad := [shard for shard in value if not 0 <= shard < count]:
            raise ValueError(f"shard {bad[0]} does not exist: shard ids go from 0 to {count - 1}")
        if len(set(value)) != len(value):
            raise ValueError("a shard is named twice")
        return value
