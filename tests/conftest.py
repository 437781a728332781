"""Shared fixtures: an engine on a temporary data directory, with the fake or the real embedder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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
