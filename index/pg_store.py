"""PostgreSQL + pgvector as the store: the same contract as ``index.store.Store``, ranking done in SQL.

Chunk vectors live in a ``vector`` column with an HNSW index (inner product on normalized vectors) per
dimension, as a partial expression index; a search filtered by collection uses pgvector 0.8's iterative index
scan, and a collection of at most ``EXACT_DENSE_CHUNKS`` chunks is searched exactly. Words: each chunk's tokens
(the same stemmed tokens as the embedded BM25) in a ``tsvector`` with a GIN index, ranked by ``ts_rank`` weighted
by idf, and a per-collection document-frequency table kept in the same transaction as each write. Every write
bumps the collection's version in that transaction too. Feeds, answers, votes and watched channels have their
tables too (migrations 2 and 3).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from index.errors import ArticleNotFoundError, FeedNotFoundError, TooManyFeedsError
from index.feedback import AnswerRecord, Quote, Votes
from index.lexical import tokenize
from index.models import Article, ExtractedArticle, Feed
from index.retrieval import DENSE_CANDIDATES, LEXICAL_CANDIDATES, scoped_dense
from index.storage import Retrieved
from index.store import ChunkRow, CollectionInfo, DuplicateArticle, NewPiece, Passages, SentenceRow, _quote

MIGRATION_LOCK = 7_316_245_001  # pg_advisory_lock key: one process migrates at a time
INDEX_LOCK = 7_316_245_002  # likewise for creating a dimension's HNSW index
FEED_LOCK = 7_316_245  # with a collection's hash: adding feeds to it takes turns
# recall@10 of a small collection in a big table: 0.93-0.96 at 400, 0.91-0.93 at 100 (benchmarks/pg_recall.py)
EF_SEARCH = 400
# A collection of at most this many chunks is searched exactly (its chunks by the btree, then sorted): recall 1
# for a few milliseconds, where HNSW inside a big table stays around 0.95.
EXACT_DENSE_CHUNKS = 2000
# Word ranking scores every chunk its candidate words find. Past this many, the commonest of the question's words
# stop bringing candidates (they still count in the scores): a chunk holding none of the rarer words is not
# among the best by words anyway. In a collection of at most this many chunks the ranking is exact.
LEXICAL_SCAN_BUDGET = 2000

# Numbered steps, applied in order, each once, recorded in schema_migrations. Never edit a released step.
MIGRATIONS: list[str] = [
    """
    CREATE EXTENSION IF NOT EXISTS vector;
    CREATE TABLE collections (
        name text PRIMARY KEY,
        model text,
        dimension integer,
        version bigint NOT NULL DEFAULT 0,
        chunks bigint NOT NULL DEFAULT 0
    );
    CREATE TABLE articles (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        collection text NOT NULL REFERENCES collections(name),
        title text NOT NULL,
        url text,
        canonical_url text,
        byline text,
        published text,
        source text NOT NULL,
        added_by text,
        added_at text NOT NULL,
        text text NOT NULL,
        text_hash text NOT NULL,
        UNIQUE (collection, canonical_url),
        UNIQUE (collection, text_hash)
    );
    CREATE TABLE chunks (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        article_id bigint NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
        collection text NOT NULL,
        start integer NOT NULL,
        "end" integer NOT NULL,
        embedding vector NOT NULL,
        terms tsvector NOT NULL
    );
    CREATE INDEX chunks_by_article ON chunks(article_id);
    CREATE INDEX chunks_by_collection ON chunks(collection);
    CREATE INDEX chunks_terms ON chunks USING gin(terms);
    CREATE TABLE sentences (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        article_id bigint NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
        start integer NOT NULL,
        "end" integer NOT NULL,
        vector bytea NOT NULL
    );
    CREATE INDEX sentences_by_article ON sentences(article_id, start);
    CREATE TABLE term_df (
        collection text NOT NULL,
        term text NOT NULL,
        df integer NOT NULL,
        PRIMARY KEY (collection, term)
    );
    """,
    """
    CREATE TABLE answers (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        collection text NOT NULL,
        question text NOT NULL,
        answered boolean NOT NULL,
        scope jsonb,
        quotes jsonb NOT NULL,
        parent_id bigint,
        asked_by text,
        asked_at text NOT NULL
    );
    CREATE TABLE answer_messages (
        message_id text PRIMARY KEY,
        answer_id bigint NOT NULL REFERENCES answers(id) ON DELETE CASCADE,
        channel_id text NOT NULL
    );
    CREATE INDEX answer_messages_by_channel ON answer_messages(channel_id, answer_id);
    CREATE TABLE votes (
        answer_id bigint NOT NULL REFERENCES answers(id) ON DELETE CASCADE,
        voter text NOT NULL,
        vote smallint NOT NULL CHECK (vote IN (-1, 1)),
        voted_at text NOT NULL,
        PRIMARY KEY (answer_id, voter)
    );
    CREATE INDEX votes_by_time ON votes(voted_at);
    CREATE TABLE watched_channels (
        channel_id text PRIMARY KEY,
        collection text NOT NULL,
        added_by text,
        added_at text NOT NULL
    );
    """,
    # Feeds followed, and every entry of them seen: kept when a feed or an article goes, so never added twice.
    """
    CREATE TABLE feeds (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        collection text NOT NULL,
        url text NOT NULL,
        canonical_url text NOT NULL,
        title text,
        notify text,
        added_by text,
        added_at text NOT NULL,
        etag text,
        last_modified text,
        last_ok text,
        last_error text,
        failures integer NOT NULL DEFAULT 0,
        next_poll text NOT NULL,
        pending integer NOT NULL DEFAULT 0,
        UNIQUE (collection, canonical_url)
    );
    CREATE INDEX feeds_by_next_poll ON feeds(next_poll);
    CREATE TABLE feed_entries (
        collection text NOT NULL,
        feed_url text NOT NULL,
        entry_key text NOT NULL,
        link text,
        outcome text NOT NULL,
        article_id bigint,
        error text,
        attempts integer NOT NULL DEFAULT 1,
        seen_at text NOT NULL,
        PRIMARY KEY (collection, feed_url, entry_key)
    );
    CREATE INDEX feed_entries_added ON feed_entries(collection, feed_url) WHERE outcome = 'added';
    """,
]

# Feed columns a poll changes (and the title, which a feed may rename).
FEED_CHANGES = ("title", "etag", "last_modified", "last_ok", "last_error", "failures", "next_poll", "pending")
FEED_COLUMNS = (
    "f.id, f.collection, f.url, f.title, f.notify, f.added_by, f.added_at, f.etag, f.last_modified, f.last_ok, "
    "f.last_error, f.failures, f.next_poll, f.pending, (SELECT count(*) FROM feed_entries e "
    "WHERE e.collection = f.collection AND e.feed_url = f.canonical_url AND e.outcome = 'added')"
)

ARTICLE_COLUMNS = (
    "a.id, a.collection, a.title, a.url, a.byline, a.published, a.source, a.added_by, a.added_at, "
    "length(a.text), (SELECT count(*) FROM chunks c WHERE c.article_id = a.id)"
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _lexeme(token: str) -> str:
    return "'" + token.replace("\\", "\\\\").replace("'", "''") + "'"


def terms_literal(text: str) -> str:
    """A tsvector literal of our own stemmed tokens with positions: PostgreSQL's parser never touches them."""
    positions: dict[str, list[int]] = {}
    for n, token in enumerate(tokenize(text)[:16000], start=1):  # tsvector positions stop at 16383
        positions.setdefault(token, []).append(n)
    return " ".join(f"{_lexeme(t)}:{','.join(map(str, p[:255]))}" for t, p in positions.items())


def migrate(conninfo: str) -> int:
    """Apply the migrations not applied yet, under an advisory lock; return how many were applied."""
    with psycopg.connect(conninfo, autocommit=True) as db:
        db.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at text NOT NULL)"
            )
            done = {r[0] for r in db.execute("SELECT version FROM schema_migrations")}
            applied = 0
            for number, step in enumerate(MIGRATIONS, start=1):
                if number in done:
                    continue
                with db.transaction():
                    db.execute(step)
                    db.execute("INSERT INTO schema_migrations VALUES (%s, %s)", (number, _now()))
                applied += 1
            return applied
        finally:
            db.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


class PgStore:
    """Articles, chunks, sentences and vectors in PostgreSQL; safe to share between processes."""

    def __init__(self, conninfo: str, *, max_size: int = 10) -> None:
        migrate(conninfo)
        self.conninfo = conninfo
        self.pool = ConnectionPool(
            conninfo, min_size=1, max_size=max_size, configure=register_vector, open=True, name="newsquote"
        )
        self._indexed: set[int] = set()

    def close(self) -> None:
        self.pool.close()

    def _query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        with self.pool.connection() as db:
            return db.execute(sql, params).fetchall()

    # --- collections -------------------------------------------------------------------------

    def collection(self, name: str) -> CollectionInfo:
        rows = self._query("SELECT name, model, dimension, version FROM collections WHERE name = %s", (name,))
        return CollectionInfo(*rows[0]) if rows else CollectionInfo(name, None, None, 0)

    def collections(self) -> list[str]:
        return [r[0] for r in self._query("SELECT name FROM collections ORDER BY name")]

    @staticmethod
    def _bump(
        db: psycopg.Connection, name: str, model: str | None = None, dimension: int | None = None, chunks: int = 0
    ) -> None:
        """Increment the collection's version (row-locking it: writes to one collection take turns)."""
        db.execute(
            "INSERT INTO collections(name, model, dimension, version, chunks) VALUES (%s, %s, %s, 1, %s) "
            "ON CONFLICT (name) DO UPDATE SET model = coalesce(excluded.model, collections.model), "
            "dimension = coalesce(excluded.dimension, collections.dimension), "
            "version = collections.version + 1, chunks = collections.chunks + excluded.chunks",
            (name, model, dimension, chunks),
        )

    def _ensure_index(self, dimension: int, *, build_memory: str | None = None) -> None:
        """Create the HNSW index for vectors of this many dimensions (HNSW needs a fixed dimension).

        ``build_memory``: maintenance_work_mem for building it over many rows at once (a graph that fits is
        built far faster).
        """
        if dimension in self._indexed:
            return
        with psycopg.connect(self.conninfo, autocommit=True) as db:
            db.execute("SELECT pg_advisory_lock(%s)", (INDEX_LOCK,))
            try:
                if build_memory:
                    db.execute(f"SET maintenance_work_mem = '{build_memory}'")
                db.execute(
                    f"CREATE INDEX IF NOT EXISTS chunks_hnsw_{dimension} ON chunks USING hnsw "
                    f"((embedding::vector({dimension})) vector_ip_ops) WHERE vector_dims(embedding) = {dimension}"
                )
            finally:
                db.execute("SELECT pg_advisory_unlock(%s)", (INDEX_LOCK,))
        self._indexed.add(dimension)

    # --- articles ----------------------------------------------------------------------------

    @staticmethod
    def _article(row: Sequence[Any]) -> Article:
        a = row
        return Article(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], int(a[9]), int(a[10]))

    def _articles(self, where: str, params: Sequence[Any]) -> list[Article]:
        return [
            self._article(r) for r in self._query(f"SELECT {ARTICLE_COLUMNS} FROM articles a WHERE {where}", params)
        ]

    def find_duplicate(self, collection: str, canonical_url: str | None, text_hash: str) -> tuple[Article, str] | None:
        if canonical_url:
            found = self._articles("a.collection = %s AND a.canonical_url = %s", (collection, canonical_url))
            if found:
                return found[0], "url"
        found = self._articles("a.collection = %s AND a.text_hash = %s", (collection, text_hash))
        return (found[0], "text") if found else None

    def add_article(
        self,
        collection: str,
        article: ExtractedArticle,
        *,
        canonical_url: str | None,
        text_hash: str,
        added_by: str | None,
        chunks: Sequence[NewPiece],
        sentences: Sequence[NewPiece],
        model: str,
        dimension: int,
        keep: Article | None = None,
    ) -> tuple[Article, list[int]]:
        """Store an article with its pieces in one transaction; a unique constraint settles a race between processes.

        ``keep``: an article copied from another store, whose id and time of adding are kept.
        """
        self._ensure_index(dimension)
        try:
            with self.pool.connection() as db, db.transaction():
                self._bump(db, collection, model, dimension, len(chunks))
                article_id = db.execute(
                    "INSERT INTO articles(id, collection, title, url, canonical_url, byline, published, source, "
                    "added_by, added_at, text, text_hash) OVERRIDING SYSTEM VALUE "
                    "VALUES (coalesce(%s, nextval(pg_get_serial_sequence('articles', 'id'))), "
                    "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                    (
                        keep.id if keep else None,
                        collection,
                        article.title,
                        article.url,
                        canonical_url,
                        article.byline,
                        article.published,
                        article.source,
                        added_by,
                        keep.added_at if keep else _now(),
                        article.text,
                        text_hash,
                    ),
                ).fetchone()[0]  # type: ignore[index]
                chunk_ids = self._insert_pieces(
                    db, collection, article_id=article_id, text=article.text, chunks=chunks, sentences=sentences
                )
                self._count_terms(db, collection, "c.article_id = %s", (article_id,), +1)
        except psycopg.errors.UniqueViolation:
            known = self.find_duplicate(collection, canonical_url, text_hash)
            if known:
                raise DuplicateArticle(*known) from None
            raise
        return self.article(collection, article_id), chunk_ids

    @staticmethod
    def _insert_pieces(
        db: psycopg.Connection,
        collection: str,
        *,
        article_id: int,
        text: str,
        chunks: Sequence[NewPiece],
        sentences: Sequence[NewPiece],
    ) -> list[int]:
        chunk_ids = []
        for c in chunks:
            row = db.execute(
                'INSERT INTO chunks(article_id, collection, start, "end", embedding, terms) '
                "VALUES (%s, %s, %s, %s, %s, %s::tsvector) RETURNING id",
                (
                    article_id,
                    collection,
                    c.start,
                    c.end,
                    np.asarray(c.vector, dtype=np.float32),
                    terms_literal(text[c.start : c.end]),
                ),
            ).fetchone()
            chunk_ids.append(int(row[0]))  # type: ignore[index]
        with db.cursor() as cur:
            cur.executemany(
                'INSERT INTO sentences(article_id, start, "end", vector) VALUES (%s, %s, %s, %s)',
                [(article_id, s.start, s.end, np.asarray(s.vector, dtype=np.float32).tobytes()) for s in sentences],
            )
        return chunk_ids

    @staticmethod
    def _count_terms(db: psycopg.Connection, collection: str, where: str, params: Sequence[Any], sign: int) -> None:
        """Add (or take away) some chunks' terms' document frequencies, in term order: writers never deadlock."""
        db.execute(
            "INSERT INTO term_df(collection, term, df) "
            f"SELECT %s, t.lexeme, {sign} * count(*) FROM chunks c, unnest(c.terms) t WHERE {where} "
            "GROUP BY t.lexeme ORDER BY t.lexeme "
            "ON CONFLICT (collection, term) DO UPDATE SET df = term_df.df + excluded.df",
            (collection, *params),
        )

    def after_copy(self) -> None:
        """Move the article ids past the ones copied in, so that an id is never given twice."""
        self._query(
            "SELECT setval(pg_get_serial_sequence('articles', 'id'), greatest(max(id), 1)) FROM articles"
        )

    def article(self, collection: str, article_id: int, *, check: bool = True) -> Article:
        found = self._articles("a.collection = %s AND a.id = %s", (collection, article_id))
        if not found:
            raise ArticleNotFoundError(article_id, collection)
        return found[0]

    def articles(self, collection: str, *, limit: int | None = None, offset: int = 0) -> list[Article]:
        return self._articles("a.collection = %s ORDER BY a.id DESC LIMIT %s OFFSET %s", (collection, limit, offset))

    def search_titles(self, collection: str, needle: str, limit: int = 25) -> list[Article]:
        pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        return self._articles(
            "a.collection = %s AND a.title ILIKE %s ORDER BY a.id DESC LIMIT %s", (collection, pattern, limit)
        )

    def article_text(self, article_id: int) -> str:
        rows = self._query("SELECT text FROM articles WHERE id = %s", (article_id,))
        return str(rows[0][0]) if rows else ""

    def article_texts(self, collection: str) -> Iterator[tuple[int, str]]:
        for article_id, text in self._query(
            "SELECT id, text FROM articles WHERE collection = %s ORDER BY id", (collection,)
        ):
            yield int(article_id), str(text)

    def remove_article(self, collection: str, article_id: int) -> tuple[Article, list[int]]:
        with self.pool.connection() as db, db.transaction():
            article = self.article(collection, article_id)
            self._bump(db, collection)  # first: it locks the collection's row, so writers take turns
            self._count_terms(db, collection, "c.article_id = %s", (article_id,), -1)
            ids = [int(r[0]) for r in db.execute("SELECT id FROM chunks WHERE article_id = %s", (article_id,))]
            db.execute("UPDATE collections SET chunks = chunks - %s WHERE name = %s", (len(ids), collection))
            db.execute("DELETE FROM articles WHERE id = %s AND collection = %s", (article_id, collection))
        return article, ids

    def has_articles(self, collection: str) -> bool:
        return bool(self._query("SELECT 1 FROM articles WHERE collection = %s LIMIT 1", (collection,)))

    def counts(self, collection: str) -> tuple[int, int, int]:
        row = self._query(
            "SELECT (SELECT count(*) FROM articles WHERE collection = %(c)s), "
            "(SELECT count(*) FROM chunks WHERE collection = %(c)s), "
            "(SELECT count(*) FROM sentences s JOIN articles a ON a.id = s.article_id WHERE a.collection = %(c)s)",
            {"c": collection},
        )[0]
        return int(row[0]), int(row[1]), int(row[2])

    # --- chunks, sentences and their vectors -------------------------------------------------

    @staticmethod
    def _matrix(rows: list[tuple[Any, ...]]) -> tuple[np.ndarray, np.ndarray]:
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        if not rows:
            return ids, np.zeros((0, 0), dtype=np.float32)
        return ids, np.vstack([np.asarray(r[1].to_numpy(), dtype=np.float32) for r in rows])

    def chunk_vectors(self, collection: str) -> tuple[np.ndarray, np.ndarray]:
        return self._matrix(
            self._query("SELECT id, embedding FROM chunks WHERE collection = %s ORDER BY id", (collection,))
        )

    def chunk_texts(self, collection: str) -> tuple[list[int], list[str]]:
        rows = self._query(
            'SELECT c.id, substr(a.text, c.start + 1, c."end" - c.start) FROM chunks c '
            "JOIN articles a ON a.id = c.article_id WHERE c.collection = %s ORDER BY c.id",
            (collection,),
        )
        return [int(r[0]) for r in rows], [str(r[1]) for r in rows]

    def chunks(self, collection: str, ids: Sequence[int]) -> dict[int, ChunkRow]:
        rows = self._query(
            'SELECT id, article_id, start, "end" FROM chunks WHERE id = ANY(%s) AND collection = %s',
            (list(ids), collection),
        )
        return {int(r[0]): ChunkRow(*r) for r in rows}

    def sentences(self, article_id: int, start: int, end: int) -> list[SentenceRow]:
        rows = self._query(
            'SELECT id, article_id, start, "end", vector FROM sentences '
            'WHERE article_id = %s AND start < %s AND "end" > %s ORDER BY start',
            (article_id, end, start),
        )
        return [SentenceRow(r[0], r[1], r[2], r[3], np.frombuffer(r[4], dtype=np.float32)) for r in rows]

    def passages(self, collection: str, chunk_ids: Sequence[int]) -> Passages:
        """Read what answering from these chunks needs in one snapshot, three queries on one connection.

        Chunks of other collections, or whose article is gone, are left out.
        """
        if not chunk_ids:
            return Passages({}, {}, {})
        ids = [int(i) for i in chunk_ids]
        with self.pool.connection() as db, db.transaction():
            db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            chunk_rows = db.execute(
                'SELECT id, article_id, start, "end" FROM chunks WHERE id = ANY(%s) AND collection = %s',
                (ids, collection),
            ).fetchall()
            article_rows = db.execute(
                f"SELECT {ARTICLE_COLUMNS}, a.text FROM articles a WHERE a.id = ANY(%s) AND a.collection = %s",
                (sorted({int(r[1]) for r in chunk_rows}), collection),
            ).fetchall()
            sentence_rows = db.execute(
                'SELECT c.id, s.id, s.article_id, s.start, s."end", s.vector FROM chunks c JOIN sentences s '
                'ON s.article_id = c.article_id AND s.start < c."end" AND s."end" > c.start '
                "WHERE c.id = ANY(%s) ORDER BY c.id, s.start",
                (ids,),
            ).fetchall()
        articles = {int(r[0]): (self._article(r), str(r[-1])) for r in article_rows}
        chunks = {int(r[0]): ChunkRow(*r) for r in chunk_rows if r[1] in articles}
        sentences: dict[int, list[SentenceRow]] = {chunk_id: [] for chunk_id in chunks}
        made: dict[int, SentenceRow] = {}  # chunks overlap: one row per sentence
        for chunk_id, *r in sentence_rows:
            if chunk_id in sentences:
                sentence = made.get(r[0])
                if sentence is None:
                    sentence = made[r[0]] = SentenceRow(r[0], r[1], r[2], r[3], np.frombuffer(r[4], dtype=np.float32))
                sentences[chunk_id].append(sentence)
        return Passages(chunks, articles, sentences)

    def article_chunk_vectors(self, collection: str, article_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        return self._matrix(
            self._query(
                "SELECT id, embedding FROM chunks WHERE article_id = ANY(%s) AND collection = %s ORDER BY id",
                (list(article_ids), collection),
            )
        )

    def replace_pieces(
        self,
        collection: str,
        pieces: Mapping[int, tuple[Sequence[NewPiece], Sequence[NewPiece]]],
        model: str,
        dimension: int,
    ) -> None:
        """Swap in new chunks and sentences for many articles at once (a rebuild), in one transaction."""
        self._ensure_index(dimension)
        with self.pool.connection() as db, db.transaction():
            self._bump(db, collection, model, dimension)
            texts = dict(self._query("SELECT id, text FROM articles WHERE collection = %s", (collection,)))
            for article_id, (chunks, sentences) in pieces.items():
                if article_id not in texts:  # removed meanwhile
                    continue
                db.execute("DELETE FROM chunks WHERE article_id = %s", (article_id,))
                db.execute("DELETE FROM sentences WHERE article_id = %s", (article_id,))
                self._insert_pieces(
                    db, collection, article_id=article_id, text=texts[article_id], chunks=chunks, sentences=sentences
                )
            db.execute("DELETE FROM term_df WHERE collection = %s", (collection,))
            self._count_terms(db, collection, "c.collection = %s", (collection,), +1)
            db.execute(
                "UPDATE collections SET chunks = (SELECT count(*) FROM chunks WHERE collection = %s) WHERE name = %s",
                (collection, collection),
            )

    def size_bytes(self) -> int:
        return int(self._query("SELECT pg_database_size(current_database())")[0][0])

    def collection_bytes(self, collection: str) -> int:
        row = self._query(
            "SELECT (SELECT coalesce(sum(octet_length(text)), 0) FROM articles WHERE collection = %(c)s), "
            "(SELECT coalesce(sum(pg_column_size(embedding)), 0) FROM chunks WHERE collection = %(c)s), "
            "(SELECT coalesce(sum(octet_length(s.vector)), 0) FROM sentences s JOIN articles a "
            "ON a.id = s.article_id WHERE a.collection = %(c)s)",
            {"c": collection},
        )[0]
        return int(row[0]) + int(row[1]) + int(row[2])

    def document_frequencies(self, collection: str, terms: Sequence[str]) -> tuple[int, dict[str, int]]:
        """The number of chunks in a collection, and how many of them hold each of ``terms`` (one query)."""
        rows = self._query(
            "SELECT NULL, chunks FROM collections WHERE name = %(c)s "
            "UNION ALL SELECT term, df FROM term_df WHERE collection = %(c)s AND term = ANY(%(t)s)",
            {"c": collection, "t": list(terms)},
        )
        documents = next((int(r[1]) for r in rows if r[0] is None), 0)
        return documents, {str(r[0]): int(r[1]) for r in rows if r[0] is not None}

    # --- answers, votes, watched channels ---------------------------------------------------

    _ANSWER = "a.id, a.collection, a.question, a.answered, a.scope, a.quotes, a.parent_id, a.asked_by, a.asked_at"

    def add_answer(
        self,
        collection: str,
        question: str,
        answered: bool,
        scope: Sequence[int] | None,
        quotes: Sequence[Quote],
        *,
        parent_id: int | None = None,
        asked_by: str | None = None,
    ) -> int:
        """Record an answer as it was shown; return its id."""
        stored = [[q.article_id, q.start, q.end, q.focus_start, q.focus_end, q.weak] for q in quotes]
        with self.pool.connection() as db:
            row = db.execute(
                "INSERT INTO answers(collection, question, answered, scope, quotes, parent_id, asked_by, asked_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (
                    collection,
                    question,
                    answered,
                    None if scope is None else Jsonb([int(a) for a in scope]),
                    Jsonb(stored),
                    parent_id,
                    asked_by,
                    _now(),
                ),
            ).fetchone()
        assert row is not None
        return int(row[0])

    def _answers(self, where: str, params: Sequence[Any]) -> list[AnswerRecord]:
        rows = self._query(f"SELECT {self._ANSWER} FROM answers a WHERE {where}", params)
        return [
            AnswerRecord(
                int(r[0]),
                str(r[1]),
                str(r[2]),
                bool(r[3]),
                None if r[4] is None else tuple(int(a) for a in r[4]),
                tuple(_quote(q) for q in r[5]),
                None if r[6] is None else int(r[6]),
                r[7],
                str(r[8]),
            )
            for r in rows
        ]

    def answer(self, answer_id: int) -> AnswerRecord | None:
        found = self._answers("a.id = %s", (answer_id,))
        return found[0] if found else None

    def add_answer_messages(self, answer_id: int, channel_id: str, message_ids: Sequence[str]) -> None:
        """Remember where an answer was shown, so that a reply to any of its messages finds it."""
        with self.pool.connection() as db, db.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO answer_messages(message_id, answer_id, channel_id) VALUES (%s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                [(str(m), answer_id, str(channel_id)) for m in message_ids],
            )

    def answer_for_message(self, message_id: str) -> AnswerRecord | None:
        found = self._answers(
            "a.id = (SELECT answer_id FROM answer_messages WHERE message_id = %s)", (str(message_id),)
        )
        return found[0] if found else None

    def latest_answer_in(self, channel_id: str) -> AnswerRecord | None:
        found = self._answers(
            "a.id = (SELECT max(answer_id) FROM answer_messages WHERE channel_id = %s)", (str(channel_id),)
        )
        return found[0] if found else None

    def set_vote(self, answer_id: int, voter: str, vote: int) -> None:
        """Record one person's vote (+1 or -1) on an answer, replacing their earlier one."""
        with self.pool.connection() as db:
            db.execute(
                "INSERT INTO votes(answer_id, voter, vote, voted_at) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (answer_id, voter) DO UPDATE SET vote = excluded.vote, voted_at = excluded.voted_at",
                (answer_id, voter, 1 if vote > 0 else -1, _now()),
            )

    def _tally(self, where: str, params: Sequence[Any]) -> Votes:
        row = self._query(
            "SELECT count(*) FILTER (WHERE v.vote > 0), count(*) FILTER (WHERE v.vote < 0) "
            f"FROM votes v JOIN answers a ON a.id = v.answer_id WHERE {where}",
            params,
        )[0]
        return Votes(int(row[0]), int(row[1]))

    def votes(self, answer_id: int) -> Votes:
        return self._tally("v.answer_id = %s", (answer_id,))

    def votes_since(self, collection: str, since: str) -> Votes:
        """The votes cast (or last changed) at ``since`` or later on a collection's answers."""
        return self._tally("a.collection = %s AND v.voted_at >= %s", (collection, since))

    def voted_answers(self, collection: str | None = None) -> list[tuple[AnswerRecord, Votes]]:
        """Every answer someone voted on, oldest first, with its votes."""
        rows = self._query(
            "SELECT v.answer_id, count(*) FILTER (WHERE v.vote > 0), count(*) FILTER (WHERE v.vote < 0) "
            "FROM votes v JOIN answers a ON a.id = v.answer_id "
            + ("WHERE a.collection = %s " if collection else "")
            + "GROUP BY v.answer_id",
            (collection,) if collection else (),
        )
        tally = {int(r[0]): Votes(int(r[1]), int(r[2])) for r in rows}
        records = self._answers("a.id = ANY(%s) ORDER BY a.id", (list(tally),)) if tally else []
        return [(r, tally[r.id]) for r in records]

    def set_watch(self, channel_id: str, collection: str, on: bool, added_by: str | None = None) -> None:
        with self.pool.connection() as db:
            if on:
                db.execute(
                    "INSERT INTO watched_channels(channel_id, collection, added_by, added_at) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (channel_id) DO UPDATE SET collection = excluded.collection, "
                    "added_by = excluded.added_by, added_at = excluded.added_at",
                    (str(channel_id), collection, added_by, _now()),
                )
            else:
                db.execute(
                    "DELETE FROM watched_channels WHERE channel_id = %s AND collection = %s",
                    (str(channel_id), collection),
                )

    def watched_channels(self, collection: str | None = None) -> dict[str, str]:
        """Channel id -> collection, for the channels whose links are added by themselves."""
        rows = self._query(
            "SELECT channel_id, collection FROM watched_channels" + (" WHERE collection = %s" if collection else ""),
            (collection,) if collection else (),
        )
        return {str(r[0]): str(r[1]) for r in rows}

    # --- feeds -------------------------------------------------------------------------------
    # As in the embedded store: entries seen are kept by the feed's canonical URL and never deleted, not even with
    # the feed, so an article removed on purpose is not added again by a poll, nor by following the feed anew.
    # Several processes may poll one feed at once: the articles' unique constraints keep an entry from being stored
    # twice, and an entry recorded as added stays so whatever a racing poll records after it.

    def _feeds(self, where: str, params: Sequence[Any], db: psycopg.Connection | None = None) -> list[Feed]:
        sql = f"SELECT {FEED_COLUMNS} FROM feeds f WHERE {where}"
        rows = db.execute(sql, params).fetchall() if db is not None else self._query(sql, params)
        return [
            Feed(
                int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], int(r[11]), r[12], int(r[13]),
                added=int(r[14]),
            )
            for r in rows
        ]  # fmt: skip

    def add_feed(
        self,
        collection: str,
        url: str,
        canonical_url: str,
        *,
        title: str | None,
        added_by: str | None,
        notify: str | None,
        now: str,
        limit: int,
    ) -> tuple[Feed, bool]:
        """Follow a feed, or return the collection's subscription to it (and True) if it has one already.

        Raises TooManyFeedsError if the collection follows ``limit`` feeds already. Processes adding feeds to one
        collection take turns (an advisory lock on the collection), so the limit holds between them too.
        """
        with self.pool.connection() as db, db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (FEED_LOCK, collection))
            found = self._feeds("f.collection = %s AND f.canonical_url = %s", (collection, canonical_url), db)
            if found:
                return found[0], True
            followed = db.execute("SELECT count(*) FROM feeds WHERE collection = %s", (collection,)).fetchone()
            if followed is not None and followed[0] >= limit:
                raise TooManyFeedsError(limit)
            row = db.execute(
                "INSERT INTO feeds(collection, url, canonical_url, title, notify, added_by, added_at, next_poll) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (collection, url, canonical_url, title, notify, added_by, now, now),
            ).fetchone()
            assert row is not None
            return self._feeds("f.id = %s", (row[0],), db)[0], False

    def feed(self, collection: str, feed_id: int, *, check: bool = True) -> Feed:
        found = self._feeds("f.collection = %s AND f.id = %s", (collection, feed_id))
        if not found:
            raise FeedNotFoundError(feed_id)
        return found[0]

    def feeds(self, collection: str) -> list[Feed]:
        return self._feeds("f.collection = %s ORDER BY f.id", (collection,))

    def due_feeds(self, now: str) -> list[Feed]:
        """Every collection's feeds whose next poll is due at ``now``, the longest overdue first."""
        return self._feeds("f.next_poll <= %s ORDER BY f.next_poll, f.id", (now,))

    def remove_feed(self, collection: str, feed_id: int) -> Feed:
        """Stop following a feed; its entries seen stay."""
        with self.pool.connection() as db, db.transaction():
            found = self._feeds("f.collection = %s AND f.id = %s FOR UPDATE", (collection, feed_id), db)
            if not found:
                raise FeedNotFoundError(feed_id)
            db.execute("DELETE FROM feeds WHERE id = %s", (feed_id,))
        return found[0]

    def update_feed(self, collection: str, feed_id: int, **changes: object) -> Feed | None:
        """Change some of a feed's columns (e.g. after a poll); None if it was removed meanwhile."""
        unknown = set(changes) - set(FEED_CHANGES)
        if unknown:
            raise ValueError(f"not a feed column that changes: {sorted(unknown)}")
        with self.pool.connection() as db, db.transaction():
            if changes:
                assignments = ", ".join(f"{c} = %({c})s" for c in changes)
                db.execute(
                    f"UPDATE feeds SET {assignments} WHERE id = %(id)s AND collection = %(collection)s",
                    {**changes, "id": feed_id, "collection": collection},
                )
            found = self._feeds("f.collection = %s AND f.id = %s", (collection, feed_id), db)
        return found[0] if found else None

    def seen_entries(self, collection: str, feed_url: str) -> dict[str, tuple[str | None, str, int]]:
        """The entries of a feed (by its canonical URL) seen so far: key -> (canonical link, outcome, attempts)."""
        rows = self._query(
            "SELECT entry_key, link, outcome, attempts FROM feed_entries WHERE collection = %s AND feed_url = %s",
            (collection, feed_url),
        )
        return {str(r[0]): (r[1], str(r[2]), int(r[3])) for r in rows}

    def record_entry(
        self,
        collection: str,
        feed_url: str,
        key: str,
        *,
        link: str | None,
        outcome: str,
        article_id: int | None,
        error: str | None,
        attempts: int,
        now: str,
    ) -> None:
        """Remember what became of one entry of a feed, replacing what an earlier attempt recorded.

        An entry already recorded as added keeps that record: another process that polled the same feed at the
        same time found the article stored (a duplicate) or failed to fetch it, but the entry was added once.
        """
        with self.pool.connection() as db:
            db.execute(
                "INSERT INTO feed_entries(collection, feed_url, entry_key, link, outcome, article_id, error, attempts, "
                "seen_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (collection, feed_url, entry_key) DO UPDATE SET link = excluded.link, "
                "outcome = excluded.outcome, article_id = excluded.article_id, error = excluded.error, "
                "attempts = excluded.attempts, seen_at = excluded.seen_at WHERE feed_entries.outcome <> 'added'",
                (collection, feed_url, key, link, outcome, article_id, error, attempts, now),
            )


def candidate_terms(terms: Sequence[str], df: dict[str, int], budget: int = LEXICAL_SCAN_BUDGET) -> list[str]:
    """The rarest of ``terms``, added while the chunks holding them (by ``df``) stay under ``budget``.

    At least one word that some chunk holds is always chosen.
    """
    chosen: list[str] = []
    found = 0
    for term in sorted(terms, key=lambda t: (df.get(t, 0), t)):
        if found and found + df.get(term, 0) > budget:
            break
        chosen.append(term)
        found += df.get(term, 0)
    return chosen


class PgRetrieval:
    """Dense and lexical ranking in SQL: nothing in memory, so every process sees every other's writes at once."""

    def __init__(self, store: PgStore) -> None:
        self.store = store
        # The dense and the word queries run at once, on two connections: PostgreSQL works on both together.
        self._beside = ThreadPoolExecutor(max_workers=4, thread_name_prefix="pg-words")

    def search(
        self,
        collection: str,
        query: Callable[[], np.ndarray],
        query_tokens: list[str],
        scope: tuple[int, ...] | None,
        read: Callable[[list[int]], Passages] | None = None,
    ) -> Retrieved:
        terms = sorted(set(query_tokens))
        counted = self._beside.submit(self.store.document_frequencies, collection, terms)

        def idf(token: str) -> float:
            documents, df = counted.result()
            n = df.get(token)
            if n is None and token not in terms:  # a word outside the question: one more look-up
                n = self.store.document_frequencies(collection, [token])[1].get(token, 0)
            return math.log(1 + (documents - (n or 0) + 0.5) / ((n or 0) + 0.5))

        def by_words() -> tuple[list[tuple[int, float]], Passages | None]:
            documents, df = counted.result()
            weights = {t: idf(t) for t in terms if df.get(t)}
            if scope is not None:
                return self._lexical(collection, weights, scope), None
            found = self._lexical(collection, weights, None, df if documents > LEXICAL_SCAN_BUDGET else None)
            return found, read([chunk_id for chunk_id, _ in found]) if read else None

        # The word counts, then the ranking by words (and the reading), on other threads and connections, while the
        # question is embedded here and then searched by meaning.
        words = self._beside.submit(by_words)
        vector = query()
        if scope is None:
            dense = self._dense(collection, vector, exact=counted.result()[0] <= EXACT_DENSE_CHUNKS)
        else:
            dense, _ = scoped_dense(self.store, collection, vector, scope)
        lexical, early = words.result()
        return Retrieved(dense, lexical, idf, early)

    def close(self) -> None:
        self._beside.shutdown(wait=False)

    def _dense(
        self, collection: str, query: np.ndarray, ef_search: int = EF_SEARCH, *, exact: bool = False
    ) -> list[tuple[int, float]]:
        dimension = int(query.shape[0])
        cast = f"vector({dimension})"
        with self.store.pool.connection() as db, db.transaction():
            if exact:  # no index scan, so no HNSW: the collection's rows (a bitmap scan of its btree), sorted
                db.execute("SET LOCAL enable_indexscan = off")
            else:
                # Filtering by collection after an HNSW scan would find too few of a small collection's chunks;
                # the iterative scan keeps walking the graph until LIMIT rows pass the filter.
                db.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
                db.execute(f"SET LOCAL hnsw.ef_search = {int(ef_search)}")
            rows = db.execute(
                f"SELECT id, d FROM (SELECT id, embedding::{cast} <#> %(q)s::{cast} AS d FROM chunks "
                f"WHERE collection = %(c)s AND vector_dims(embedding) = {dimension} "
                f"ORDER BY embedding::{cast} <#> %(q)s::{cast} LIMIT %(k)s) hits ORDER BY d, id",
                {"q": np.asarray(query, dtype=np.float32), "c": collection, "k": DENSE_CANDIDATES},
            ).fetchall()
        return [(int(r[0]), -float(r[1])) for r in rows]

    def _lexical(
        self,
        collection: str,
        weights: dict[str, float],
        scope: tuple[int, ...] | None,
        df: dict[str, int] | None = None,
    ) -> list[tuple[int, float]]:
        """Chunks holding any of the words, by the sum over words of idf x ts_rank (length-normalized frequency).

        ``df``: the words' document frequencies, given for a collection bigger than ``LEXICAL_SCAN_BUDGET``; the
        candidates then come from the rarest words, up to that many chunks. Else every chunk holding a word counts.
        """
        if not weights:
            return []
        terms = list(weights)
        finders = terms if df is None else candidate_terms(terms, df, LEXICAL_SCAN_BUDGET)
        score = " + ".join(f"%(w{n})s * ts_rank(terms, %(t{n})s::tsquery, 1)" for n in range(len(terms)))
        params: dict[str, Any] = {"c": collection, "any": " | ".join(map(_lexeme, finders)), "k": LEXICAL_CANDIDATES}
        for n, t in enumerate(terms):
            params[f"w{n}"], params[f"t{n}"] = weights[t], _lexeme(t)
        where = "collection = %(c)s AND terms @@ %(any)s::tsquery"
        if scope is not None:
            where += " AND article_id = ANY(%(scope)s)"
            params["scope"] = list(scope)
        rows = self.store._query(
            f"SELECT id, {score} AS s FROM chunks WHERE {where} ORDER BY s DESC, id LIMIT %(k)s", params
        )
        return [(int(r[0]), float(r[1])) for r in rows if r[1] > 0]

    def before_write(self, collection: str) -> object:
        return None

    def after_write(
        self,
        collection: str,
        before: object,
        *,
        added: tuple[list[int], np.ndarray] | None = None,
        added_texts: list[str] | None = None,
        removed: list[int] | None = None,
    ) -> None:
        """Nothing to do: the indexes are PostgreSQL's, updated in the write's transaction."""

    def reset(self, collection: str) -> None:
        """Nothing to do, likewise."""

    def index_bytes(self, collection: str) -> int:
        rows = self.store._query(
            "SELECT coalesce(sum(pg_relation_size(indexrelid)), 0) FROM pg_index WHERE indrelid = 'chunks'::regclass"
        )
        return int(rows[0][0])
