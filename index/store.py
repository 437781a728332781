"""SQLite, the source of truth: articles with their full text, chunks and sentences with offsets and vectors."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from index.errors import ArticleNotFoundError
from index.models import Article, ExtractedArticle

SCHEMA = """
PRAGMA foreign_keys = ON;
CREATE TABLE IF NOT EXISTS collections (
    name TEXT PRIMARY KEY,
    model TEXT,
    dimension INTEGER,
    version INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS articles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    collection TEXT NOT NULL REFERENCES collections(name),
    title TEXT NOT NULL,
    url TEXT,
    canonical_url TEXT,
    byline TEXT,
    published TEXT,
    source TEXT NOT NULL,
    added_by TEXT,
    added_at TEXT NOT NULL,
    text TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    UNIQUE (collection, canonical_url),
    UNIQUE (collection, text_hash)
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_article ON chunks(article_id);
CREATE TABLE IF NOT EXISTS sentences (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS sentences_by_article ON sentences(article_id, start);
"""

ARTICLE_COLUMNS = (
    "a.id, a.collection, a.title, a.url, a.byline, a.published, a.source, a.added_by, a.added_at, "
    "length(a.text), (SELECT count(*) FROM chunks c WHERE c.article_id = a.id)"
)


@dataclass(frozen=True, slots=True)
class CollectionInfo:
    name: str
    model: str | None
    dimension: int | None
    version: int


@dataclass(frozen=True, slots=True)
class ChunkRow:
    id: int
    article_id: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class SentenceRow:
    id: int
    article_id: int
    start: int
    end: int
    vector: np.ndarray


@dataclass(frozen=True, slots=True)
class NewPiece:
    """A chunk or sentence to store: its span and its vector."""

    start: int
    end: int
    vector: np.ndarray


def _blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def _article(row: Sequence) -> Article:
    return Article(*row)


class Store:
    """All reads and writes of the database; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.executescript(SCHEMA)
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, params: Sequence = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # --- collections -------------------------------------------------------------------------

    def collection(self, name: str) -> CollectionInfo:
        rows = self._query("SELECT name, model, dimension, version FROM collections WHERE name = ?", (name,))
        return CollectionInfo(*rows[0]) if rows else CollectionInfo(name, None, None, 0)

    def collections(self) -> list[str]:
        return [r[0] for r in self._query("SELECT name FROM collections ORDER BY name")]

    @staticmethod
    def _bump(db: sqlite3.Connection, name: str, model: str | None = None, dimension: int | None = None) -> None:
        db.execute("INSERT OR IGNORE INTO collections(name, version) VALUES (?, 0)", (name,))
        db.execute(
            "UPDATE collections SET version = version + 1, model = coalesce(?, model), "
            "dimension = coalesce(?, dimension) WHERE name = ?",
            (model, dimension, name),
        )

    # --- articles ----------------------------------------------------------------------------

    def find_duplicate(self, collection: str, canonical_url: str | None, text_hash: str) -> tuple[Article, str] | None:
        """Return the stored article this one repeats, and whether the URL or the text matched."""
        if canonical_url:
            rows = self._query(
                f"SELECT {ARTICLE_COLUMNS} FROM articles a WHERE a.collection = ? AND a.canonical_url = ?",
                (collection, canonical_url),
            )
            if rows:
                return _article(rows[0]), "url"
        rows = self._query(
            f"SELECT {ARTICLE_COLUMNS} FROM articles a WHERE a.collection = ? AND a.text_hash = ?",
            (collection, text_hash),
        )
        return (_article(rows[0]), "text") if rows else None

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
    ) -> tuple[Article, list[int]]:
        """Store an article with its chunks and sentences in one transaction; return it and its chunk ids."""
        added_at = datetime.now(UTC).isoformat(timespec="seconds")
        with self._transaction() as db:
            self._bump(db, collection, model, dimension)
            cursor = db.execute(
                "INSERT INTO articles(collection, title, url, canonical_url, byline, published, source, added_by, "
                "added_at, text, text_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    collection,
                    article.title,
                    article.url,
                    canonical_url,
                    article.byline,
                    article.published,
                    article.source,
                    added_by,
                    added_at,
                    article.text,
                    text_hash,
                ),
            )
            article_id = int(cursor.lastrowid or 0)
            chunk_ids = self._insert_pieces(db, article_id, chunks, sentences)
        return self.article(collection, article_id), chunk_ids

    def article(self, collection: str, article_id: int) -> Article:
        rows = self._query(
            f"SELECT {ARTICLE_COLUMNS} FROM articles a WHERE a.collection = ? AND a.id = ?", (collection, article_id)
        )
        if not rows:
            raise ArticleNotFoundError(article_id, collection)
        return _article(rows[0])

    def articles(self, collection: str, *, limit: int | None = None, offset: int = 0) -> list[Article]:
        rows = self._query(
            f"SELECT {ARTICLE_COLUMNS} FROM articles a WHERE a.collection = ? ORDER BY a.id DESC LIMIT ? OFFSET ?",
            (collection, -1 if limit is None else limit, offset),
        )
        return [_article(r) for r in rows]

    def search_titles(self, collection: str, needle: str, limit: int = 25) -> list[Article]:
        pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self._query(
            f"SELECT {ARTICLE_COLUMNS} FROM articles a WHERE a.collection = ? AND a.title LIKE ? ESCAPE '\\' "
            "ORDER BY a.id DESC LIMIT ?",
            (collection, pattern, limit),
        )
        return [_article(r) for r in rows]

    def article_text(self, article_id: int) -> str:
        rows = self._query("SELECT text FROM articles WHERE id = ?", (article_id,))
        return str(rows[0][0]) if rows else ""

    def article_texts(self, collection: str) -> Iterator[tuple[int, str]]:
        for article_id, text in self._query(
            "SELECT id, text FROM articles WHERE collection = ? ORDER BY id", (collection,)
        ):
            yield int(article_id), str(text)

    def remove_article(self, collection: str, article_id: int) -> tuple[Article, list[int]]:
        """Delete an article with its chunks and sentences; return it and the chunk ids that went."""
        with self._transaction() as db:
            article = self.article(collection, article_id)
            chunk_ids = [r[0] for r in db.execute("SELECT id FROM chunks WHERE article_id = ?", (article_id,))]
            db.execute("DELETE FROM articles WHERE id = ?", (article_id,))
            self._bump(db, collection)
        return article, chunk_ids

    def has_articles(self, collection: str) -> bool:
        return bool(self._query("SELECT 1 FROM articles WHERE collection = ? LIMIT 1", (collection,)))

    def counts(self, collection: str) -> tuple[int, int, int]:
        """Return the numbers of articles, chunks and sentences in a collection."""
        row = self._query(
            "SELECT (SELECT count(*) FROM articles WHERE collection = :c), "
            "(SELECT count(*) FROM chunks JOIN articles a ON a.id = chunks.article_id WHERE a.collection = :c), "
            "(SELECT count(*) FROM sentences JOIN articles a ON a.id = sentences.article_id WHERE a.collection = :c)",
            {"c": collection},  # type: ignore[arg-type]
        )[0]
        return int(row[0]), int(row[1]), int(row[2])

    # --- chunks, sentences and their vectors -------------------------------------------------

    def chunk_vectors(self, collection: str) -> tuple[np.ndarray, np.ndarray]:
        """Return every chunk id of a collection and the matching vectors."""
        rows = self._query(
            "SELECT c.id, c.vector FROM chunks c JOIN articles a ON a.id = c.article_id WHERE a.collection = ? "
            "ORDER BY c.id",
            (collection,),
        )
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        if not rows:
            return ids, np.zeros((0, 0), dtype=np.float32)
        return ids, np.vstack([np.frombuffer(r[1], dtype=np.float32) for r in rows])

    def chunk_texts(self, collection: str) -> tuple[list[int], list[str]]:
        """Return every chunk id of a collection with its text, for the lexical index."""
        rows = self._query(
            "SELECT c.id, substr(a.text, c.start + 1, c.end - c.start) FROM chunks c "
            "JOIN articles a ON a.id = c.article_id WHERE a.collection = ? ORDER BY c.id",
            (collection,),
        )
        return [int(r[0]) for r in rows], [str(r[1]) for r in rows]

    def chunks(self, collection: str, ids: Sequence[int]) -> dict[int, ChunkRow]:
        """Return the chunks of ``collection`` among ``ids``; ids of other collections are ignored."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._query(
            f"SELECT c.id, c.article_id, c.start, c.end FROM chunks c JOIN articles a ON a.id = c.article_id "
            f"WHERE a.collection = ? AND c.id IN ({marks})",
            (collection, *ids),
        )
        return {int(r[0]): ChunkRow(*r) for r in rows}

    def sentences(self, article_id: int, start: int, end: int) -> list[SentenceRow]:
        """Return the sentences of an article that overlap ``[start, end)``, in order, with vectors."""
        rows = self._query(
            "SELECT id, article_id, start, end, vector FROM sentences WHERE article_id = ? AND start < ? AND end > ? "
            "ORDER BY start",
            (article_id, end, start),
        )
        return [SentenceRow(r[0], r[1], r[2], r[3], np.frombuffer(r[4], dtype=np.float32)) for r in rows]

    def replace_pieces(
        self,
        collection: str,
        pieces: dict[int, tuple[Sequence[NewPiece], Sequence[NewPiece]]],
        model: str,
        dimension: int,
    ) -> None:
        """Swap in new chunks and sentences for many articles at once (a rebuild), in one transaction.

        Articles removed meanwhile are skipped; new chunk ids are never old ones.
        """
        with self._transaction() as db:
            present = {r[0] for r in db.execute("SELECT id FROM articles WHERE collection = ?", (collection,))}
            for article_id, (chunks, sentences) in pieces.items():
                if article_id not in present:
                    continue
                db.execute("DELETE FROM chunks WHERE article_id = ?", (article_id,))
                db.execute("DELETE FROM sentences WHERE article_id = ?", (article_id,))
                self._insert_pieces(db, article_id, chunks, sentences)
            self._bump(db, collection, model, dimension)

    @staticmethod
    def _insert_pieces(
        db: sqlite3.Connection, article_id: int, chunks: Sequence[NewPiece], sentences: Sequence[NewPiece]
    ) -> list[int]:
        chunk_ids = [
            int(
                db.execute(
                    "INSERT INTO chunks(article_id, start, end, vector) VALUES (?, ?, ?, ?)",
                    (article_id, c.start, c.end, _blob(c.vector)),
                ).lastrowid
                or 0
            )
            for c in chunks
        ]
        db.executemany(
            "INSERT INTO sentences(article_id, start, end, vector) VALUES (?, ?, ?, ?)",
            [(article_id, s.start, s.end, _blob(s.vector)) for s in sentences],
        )
        return chunk_ids

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file())
