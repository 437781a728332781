"""Start-up, command sync, intents, the gateway dropping, and ``python -m bot`` refusing bad tokens and stopping."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
from pathlib import Path

import discord
import pytest

from bot.client import NewsQuoteBot, load_model_in_background
from index import Engine
from tests.bot.conftest import StartBot
from tests.bot.support import TOKEN, World, callback, webhook_path
from tests.fakes.discord_server import MESSAGE_CONTENT_INTENT, FakeDiscord
from tests.index.articles import PHONE_CALL, PHONE_CALL_TITLE

COMMANDS = {"ask", "add", "articles", "remove", "rebuild", "stats", "feed", "watch", "Add article"}
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("collecting", [True, False])
def test_loading_the_model_freezes_the_start_up_heap_and_leaves_the_collector_as_it_was(
    engine: Engine, collecting: bool
) -> None:
    """A full collection walks every tracked object with the GIL held: what start-up made is moved out of its reach."""
    gc.unfreeze()
    (gc.enable if collecting else gc.disable)()
    try:
        load_model_in_background(engine).join(timeout=30)
        assert gc.get_freeze_count() > 0
        assert gc.isenabled() is collecting
    finally:
        gc.unfreeze()
        gc.enable()


def clean_env(**extra: str) -> dict[str, str]:
    """The environment minus any DISCORD_/NEWSQUOTE_ settings and warning switches, with the project importable."""
    dropped = ("DISCORD_", "NEWSQUOTE_", "PYTHONWARNINGS", "PYTHONDEVMODE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    return env | {"PYTHONPATH": str(REPO)} | extra


async def test_start_up_syncs_every_command_globally(fake: FakeDiscord, bot: NewsQuoteBot) -> None:
    assert {c["name"] for c in fake.global_commands} == COMMANDS
    add = next(c for c in fake.global_commands if c["name"] == "add")
    assert {o["name"] for o in add["options"]} == {"url", "text", "file"}
    assert fake.guild_commands == {}
    assert bot.user is not None
    assert str(bot.user.id) == fake.bot_user["id"]


async def test_development_guild_gets_the_commands_instead(world: World, start_bot: StartBot) -> None:
    await start_bot(dev_guild_id=int(world.guild_a["id"]))

    assert {c["name"] for c in world.fake.guild_commands[world.guild_a["id"]]} == COMMANDS
    assert world.fake.global_commands == []


@pytest.mark.parametrize("message_content", [False, True])
async def test_message_content_intent_is_requested_only_when_configured(
    fake: FakeDiscord, start_bot: StartBot, message_content: bool
) -> None:
    await start_bot(message_content=message_content)

    assert bool(fake.intents & MESSAGE_CONTENT_INTENT) is message_content
    assert fake.intents & discord.Intents(guilds=True, guild_messages=True).value


async def test_bot_resumes_after_the_gateway_drops_and_keeps_answering(fake: FakeDiscord, bot: NewsQuoteBot) -> None:
    await fake.drop_gateway(4000)
    await fake.wait_until(lambda: fake.resume_count == 1, timeout=5)
    interaction = await fake.send_interaction("stats")
    request = await callback(fake, interaction)

    assert fake.identify_count == 1
    assert request.json["data"]["embeds"][0]["title"] == "Index statistics"


def test_missing_token_exits_2_with_one_line(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "bot"]
    run = {"cwd": tmp_path, "env": clean_env(), "capture_output": True, "text": True, "timeout": 60}
    done = subprocess.run(command, check=False, **run)  # type: ignore[call-overload]

    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "DISCORD_TOKEN" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


async def start_bot_process(fake: FakeDiscord, tmp_path: Path, token: str = TOKEN) -> asyncio.subprocess.Process:
    """Start ``python -m bot`` against ``fake``, with its data in ``tmp_path``."""
    env = clean_env(
        DISCORD_TOKEN=token,
        DISCORD_API_BASE_URL=fake.base_url,
        DISCORD_GATEWAY_URL=fake.gateway_url,
        NEWSQUOTE_DATA_DIR=str(tmp_path / "data"),
    )
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


def assert_one_error_line(errors: str, contains: str) -> None:
    """Assert the process said what went wrong in one line (after any log lines), with no traceback."""
    assert "Traceback" not in errors
    assert [line for line in errors.splitlines() if line.startswith("error:")] == [errors.strip().splitlines()[-1]]
    assert contains in errors.strip().splitlines()[-1]


async def test_rejected_token_exits_2_with_one_line(fake: FakeDiscord, tmp_path: Path) -> None:
    process = await start_bot_process(fake, tmp_path, token="not-" + TOKEN)
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    errors = stderr.decode()

    assert process.returncode == 2
    assert [line for line in errors.splitlines() if line] == [errors.strip()]
    assert_one_error_line(errors, "rejected DISCORD_TOKEN")
    assert fake.requests[-1].path == "/users/@me"


async def test_token_rejected_by_the_gateway_exits_2_with_one_line(fake: FakeDiscord, tmp_path: Path) -> None:
    fake.identify_close_code = 4004
    process = await start_bot_process(fake, tmp_path)
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    errors = stderr.decode()

    assert process.returncode == 2
    assert [line for line in errors.splitlines() if line] == [errors.strip()]
    assert_one_error_line(errors, "rejected DISCORD_TOKEN")
    assert fake.identify_count == 1


async def test_sigterm_stops_the_bot_cleanly(fake: FakeDiscord, tmp_path: Path) -> None:
    process = await start_bot_process(fake, tmp_path)
    await fake.wait_ready(timeout=60)

    process.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(process.communicate(), 10)
    log = stderr.decode()

    assert process.returncode == 0, log
    assert "Traceback" not in log
    assert "Received SIGTERM: stopping" in log
    assert log.strip().splitlines()[-1].endswith("Stopped")


@pytest.mark.slow
async def test_sigterm_after_the_real_model_has_answered_stops_cleanly(fake: FakeDiscord, tmp_path: Path) -> None:
    """The model's worker threads are running by then: the process must still end with exit code 0."""
    process = await start_bot_process(fake, tmp_path)
    await fake.wait_ready(timeout=60)
    upload = fake.add_attachment("phone-call.txt", PHONE_CALL.encode(), "text/plain")
    added = await fake.send_interaction("add file", {"attachment": upload})
    await fake.wait_for_request(
        "PATCH",
        webhook_path(fake, added, "/messages/@original"),
        lambda r: PHONE_CALL_TITLE in ((r.json or {}).get("content") or ""),
        timeout=90,
    )
    asked = await fake.send_interaction("ask", {"question": "who claimed the call happened?"})
    await fake.wait_for_request("POST", webhook_path(fake, asked), timeout=30)

    process.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    log = stderr.decode()

    assert process.returncode == 0, log
    assert "terminate called" not in log
    assert "Traceback" not in log
    assert log.strip().splitlines()[-1].endswith("Stopped")
