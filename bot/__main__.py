"""Run the Discord bot: ``python -m bot`` (settings from the environment and ``.env``)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from typing import NoReturn

import aiohttp
import discord
from pydantic import ValidationError

from bot.client import MODEL_LOADER, NewsQuoteBot, create_bot
from bot.settings import BotSettings
from index import Engine, Settings
from index.errors import NewsQuoteError
from index.health import check_imports

log = logging.getLogger("bot")

MISSING_TOKEN = (
    "error: DISCORD_TOKEN is not set: put your bot's token in the environment or in .env "
    "(Discord Developer Portal > your application > Bot > Reset Token)."
)
REJECTED_TOKEN = (
    "error: Discord rejected DISCORD_TOKEN: copy a fresh token from the Developer Portal "
    "(your application > Bot > Reset Token) into the environment or .env."
)
TOKEN_REJECTED_CODE = 4004  # the gateway's close code for a token it refuses at IDENTIFY
MISSING_INTENT = (
    "error: Discord refused the Message Content intent: enable it in the Developer Portal "
    "(Bot > Privileged Gateway Intents) or set DISCORD_MESSAGE_CONTENT=false."
)


def settings_error(exc: ValidationError, prefix: str) -> str:
    """Describe the first invalid setting in one line."""
    first = exc.errors()[0]
    name = prefix + "_".join(str(part) for part in first["loc"]).upper()
    if name == "DISCORD_TOKEN":
        return MISSING_TOKEN
    return f"error: invalid setting {name}: {first['msg']}"


async def run(bot: NewsQuoteBot, token: str, log_level: str) -> None:
    """Log in, then connect until stopped; logging starts after the login so a rejected token prints one line."""
    async with bot:
        await bot.login(token)
        discord.utils.setup_logging(level=logging.getLevelNamesMapping()[log_level])
        bot.stop_on_signals(signal.SIGTERM, signal.SIGINT)
        await bot.connect()


def main() -> int:
    """Start the bot; return the process exit code."""
    try:
        bot_settings = BotSettings()  # type: ignore[call-arg]  # the token comes from the environment
    except ValidationError as exc:
        print(settings_error(exc, "DISCORD_"), file=sys.stderr)
        return 2
    try:
        settings = Settings()
        check_imports()  # a broken install fails here, not at the first article someone adds
        engine = Engine(settings)
    except ValidationError as exc:
        print(settings_error(exc, "NEWSQUOTE_"), file=sys.stderr)
        return 2
    except NewsQuoteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # an unreadable data directory, a corrupt database
        print(f"error: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return 2
    bot = create_bot(engine, bot_settings)
    try:
        asyncio.run(run(bot, bot_settings.token.get_secret_value(), bot_settings.log_level))
    except discord.LoginFailure:
        print(REJECTED_TOKEN, file=sys.stderr)
        return 2
    except discord.PrivilegedIntentsRequired:
        print(MISSING_INTENT, file=sys.stderr)
        return 2
    except discord.ConnectionClosed as exc:
        if exc.code == TOKEN_REJECTED_CODE:
            print(REJECTED_TOKEN, file=sys.stderr)
            return 2
        reason = f" ({exc.reason})" if exc.reason else ""
        print(f"error: Discord closed the gateway connection with code {exc.code}{reason}", file=sys.stderr)
        return 1
    except (aiohttp.ClientError, OSError) as exc:
        print(f"error: cannot reach Discord at {bot_settings.api_base_url}: {exc}".splitlines()[0], file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # where signal handlers cannot be installed (Windows)
        pass
    finally:
        engine.close()
    log.info("Stopped")
    return 0


def exit_now(code: int) -> NoReturn:
    """Exit with ``code``, without waiting for a model that is still loading.

    An import cannot be interrupted and nothing needs the model once the database is closed; letting the
    interpreter tear down around a thread inside torch's import could also crash it on the way out.
    """
    if any(thread.name == MODEL_LOADER and thread.is_alive() for thread in threading.enumerate()):
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    exit_now(main())
