"""``BotSettings`` from the environment: defaults, role lists, and refusals."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.settings import DISCORD_API, DISCORD_GATEWAY, BotSettings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DISCORD_TOKEN", "DISCORD_ADMIN_ROLE_IDS", "DISCORD_API_BASE_URL", "DISCORD_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)


def load() -> BotSettings:
    return BotSettings(_env_file=None)  # type: ignore[call-arg]


def test_defaults_point_at_discord_and_leave_message_content_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "abc")

    settings = load()

    assert (settings.api_base_url, settings.gateway_url) == (DISCORD_API, DISCORD_GATEWAY)
    assert settings.message_content is False
    assert settings.token.get_secret_value() == "abc"
    assert "abc" not in repr(settings)


@pytest.mark.parametrize("value", ["12,34", "12, 34", "[12, 34]"])
def test_admin_role_ids_accept_a_comma_separated_or_json_list(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "abc")
    monkeypatch.setenv("DISCORD_ADMIN_ROLE_IDS", value)

    assert load().admin_role_ids == [12, 34]


@pytest.mark.parametrize(
    ("name", "value"),
    [("DISCORD_TOKEN", "   "), ("DISCORD_ADMIN_ROLE_IDS", "12,moderators"), ("DISCORD_LOG_LEVEL", "chatty")],
)
def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "abc")
    monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError):
        load()


def test_token_is_required() -> None:
    with pytest.raises(ValidationError, match="token"):
        load()
