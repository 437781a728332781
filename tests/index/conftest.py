"""Fixtures for the engine's tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from trafilatura.deduplication import LRU_TEST

from index.settings import Settings
from tests.index.articles import BAKERY_STRIKE, LIBRARY_HOURS, NEWS_PAGE, PHONE_CALL, STADIUM_VOTE
from tests.index.local_server import LocalServer, respond, running_server


@pytest.fixture(autouse=True)
def _fresh_extraction_cache() -> None:
    """Start every test with trafilatura's process-wide duplicate cache empty.

    index/sources.py extracts with ``deduplicate=True``, which makes trafilatura drop paragraphs it has seen
    a few times before in the same process; without this, tests would depend on which ones ran first.
    ``test_the_same_page_extracts_the_same_text_every_time`` covers that bug itself.
    """
    LRU_TEST.clear()


@pytest.fixture
def server() -> Iterator[LocalServer]:
    """A real HTTP server on 127.0.0.1, on a random port, for the duration of one test."""
    with running_server() as state:
        yield state


@pytest.fixture
def open_settings(settings: Settings) -> Settings:
    """Settings that let the tests fetch from their own server on 127.0.0.1."""
    return settings.model_copy(update={"allow_private_hosts": True, "fetch_timeout": 5.0})


# --- the command line, run as a user would --------------------------------------------------------


def run_cli(
    *args: str, data_dir: Path, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m index ARGS --data-dir DATA_DIR`` in a clean environment, away from any ``.env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NEWSQUOTE_")}
    clean.update({"HF_HUB_OFFLINE": "1", "PYTHONIOENCODING": "utf-8", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "index", *args, "--data-dir", str(data_dir)],
        input=stdin,
        capture_output=True,
        text=True,
        env=clean,
        cwd=data_dir.parent,
        timeout=300,
        check=False,
    )


@dataclass(frozen=True)
class CliLibrary:
    """A data directory filled by one ``python -m index add`` run with every kind of source."""

    data_dir: Path
    added: subprocess.CompletedProcess[str]
    library_url: str


@pytest.fixture(scope="session")
def cli_library(tmp_path_factory: pytest.TempPathFactory) -> CliLibrary:
    root = tmp_path_factory.mktemp("cli")
    (root / "phone.md").write_text("# " + PHONE_CALL, encoding="utf-8")
    (root / "ferry.html").write_text(NEWS_PAGE, encoding="utf-8")
    with running_server() as server:
        server.routes["/libraries"] = respond(LIBRARY_HOURS, content_type="text/plain; charset=utf-8")
        added = run_cli(
            "add",
            "--json",
            "--text",
            STADIUM_VOTE,
            str(root / "phone.md"),
            "-",
            str(root / "ferry.html"),
            server.url("/libraries"),
            data_dir=root / "data",
            stdin=BAKERY_STRIKE,
            env={"NEWSQUOTE_ALLOW_PRIVATE_HOSTS": "true"},
        )
        library_url = server.url("/libraries")
    assert added.returncode == 0, added.stderr
    return CliLibrary(root / "data", added, library_url)


@pytest.fixture(scope="session")
def cli_phone_answer(cli_library: CliLibrary) -> dict:
    """``python -m index ask "who claimed the call happened?" --json`` on the CLI library."""
    asked = run_cli("ask", "who claimed the call happened?", "--json", data_dir=cli_library.data_dir)
    assert asked.returncode == 0, asked.stderr
    return json.loads(asked.stdout)


@pytest.fixture
def cli_copy(cli_library: CliLibrary, tmp_path: Path) -> Path:
    """A private copy of the CLI library, for tests that change it."""
    copy = tmp_path / "data"
    shutil.copytree(cli_library.data_dir, copy)
    return copy
