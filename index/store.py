"""SQLite, the source of truth: articles with their full text, chunks and sentences with offsets and vectors.

Damage is never served. Opening checks the file's header (what SQLite would misread or refuse to write), the
tables' definitions and ``PRAGMA integrity_check`` (once per process: about 0.2 s per 100 MB); afterwards,
SQLite's own corruption errors and rows whose contents no longer match the checksum stored with them raise
:class:`DatabaseDamagedError` too (a row read again exactly as it was verified is compared, not hashed again: any
change to it is still caught). Nothing is written to a database once it is known to be damaged. Opening
waits for other processes instead of failing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import numbers
import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from index.errors import ArticleNotFoundError, DatabaseDamagedError, FeedNotFoundError, TooManyFeedsError
from index.feedback import AnswerRecord, Quote, Votes
from index.models import Article, ExtractedArticle, Feed

log = logging.getLogger(__name__)

SCHEMA = """
PRAGMA foreign_keys = ON;
CREATE TABLE IF NOT EXISTS collections (
    name TEXT PRIMARY KEY,
    model TEXT,
    dimension INTEGER,
    version INTEGER NOT NULL DEFAULT 0,
    checksum BLOB
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
    checksum BLOB,
    UNIQUE (collection, canonical_url),
    UNIQUE (collection, text_hash)
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    vector BLOB NOT NULL,
    checksum BLOB
);
CREATE INDEX IF NOT EXISTS chunks_by_article ON chunks(article_id);
CREATE TABLE IF NOT EXISTS sentences (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    vector BLOB NOT NULL,
    checksum BLOB
);
CREATE INDEX IF NOT EXISTS sentences_by_article ON sentences(article_id, start);
-- answers and votes: what was quoted for a question, and what people thought of it
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    collection TEXT NOT NULL,
    question TEXT NOT NULL,
    answered INTEGER NOT NULL,
    scope TEXT,
    quotes TEXT NOT NULL,
    parent_id INTEGER,
    asked_by TEXT,
    asked_at TEXT NOT NULL,
    checksum BLOB
);
CREATE TABLE IF NOT EXISTS answer_messages (
    message_id TEXT PRIMARY KEY,
    answer_id INTEGER NOT NULL REFERENCES answers(id) ON DELETE CASCADE,
    channel_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS answer_messages_by_channel ON answer_messages(channel_id, answer_id);
CREATE TABLE IF NOT EXISTS votes (
    answer_id INTEGER NOT NULL REFERENCES answers(id) ON DELETE CASCADE,
    voter TEXT NOT NULL,
    vote INTEGER NOT NULL CHECK (vote IN (-1, 1)),
    voted_at TEXT NOT NULL,
    checksum BLOB,
    PRIMARY KEY (answer_id, voter)
);
CREATE INDEX IF NOT EXISTS votes_by_time ON votes(voted_at);
CREATE TABLE IF NOT EXISTS watched_channels (
    channel_id TEXT PRIMARY KEY,
    collection TEXT NOT NULL,
    added_by TEXT,
    added_at TEXT NOT NULL
);
-- feeds followed, and every entry of them seen (kept when a feed or an article goes: never added twice)
CREATE TABLE IF NOT EXISTS feeds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    collection TEXT NOT NULL,
    url TEXT NOT NULL,
    canonical_url TEXT NOT NULL,
    title TEXT,
    notify TEXT,
    added_by TEXT,
    added_at TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    last_ok TEXT,
    last_error TEXT,
    failures INTEGER NOT NULL DEFAULT 0,
    next_poll TEXT NOT NULL,
    pending INTEGER NOT NULL DEFAULT 0,
    checksum BLOB,
    UNIQUE (collection, canonical_url)
);
CREATE INDEX IF NOT EXISTS feeds_by_next_poll ON feeds(next_poll);
CREATE TABLE IF NOT EXISTS feed_entries (
    collection TEXT NOT NULL,
    feed_url TEXT NOT NULL,
    entry_key TEXT NOT NULL,
    link TEXT,
    outcome TEXT NOT NULL,
    article_id INTEGER,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 1,
    seen_at TEXT NOT NULL,
    checksum BLOB,
    PRIMARY KEY (collection, feed_url, entry_key)
);
"""

# Every column but the id is covered by the row's checksum, in this order.
CHECKED_COLUMNS = {
    "collections": ("name", "model", "dimension", "version"),
    "articles": (
        "collection", "title", "url", "canonical_url", "byline", "published", "source", "added_by", "added_at",
        "text", "text_hash",
    ),
    "chunks": ("article_id", "start", "end", "vector"),
    "sentences": ("article_id", "start", "end", "vector"),
}  # fmt: skip

# id, the checked columns, the checksum, then the chunk count.
ARTICLE_COLUMNS = (
    "a.id, " + ", ".join(f"a.{c}" for c in CHECKED_COLUMNS["articles"]) + ", a.checksum, "
    "(SELECT count(*) FROM chunks c WHERE c.article_id = a.id)"
)
PIECE_COLUMNS = "id, article_id, start, end, vector, checksum"

CHECKED_BUDGET = 64 * 1024 * 1024  # bytes of rows kept as verified, per process (texts and vectors held)
CHECKED_ROW_BYTES = 200  # a kept row's own overhead
BUSY_TIMEOUT = 30.0  # seconds to wait for another process's lock, when opening and on every write
DAMAGE_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_FORMAT}
BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
HEADER = b"SQLite format 3\x00"

REBUILD_REMEDY = (
    "Its text is intact and the vectors can be made again from it: an admin must rebuild the index "
    "(/rebuild in Discord, `python -m index rebuild` on the command line), or restore the database from a backup."
)


def article_remedy(article_id: object) -> str:
    return (
        f"Restore the database from a backup, or remove article #{article_id} (`python -m index remove "
        f"{article_id}`) and add it again."
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
class Passages:
    """What answering a question reads: the retrieved chunks still there, their articles, their sentences."""

    chunks: dict[int, ChunkRow]  # by chunk id
    articles: dict[int, tuple[Article, str]]  # by article id: the article and its text
    sentences: dict[int, list[SentenceRow]]  # by chunk id: the sentences overlapping it, in text order

    def __or__(self, more: Passages) -> Passages:
        """Both reads together; where both hold a chunk or article, ``more``'s."""
        return Passages(
            self.chunks | more.chunks, self.articles | more.articles, self.sentences | more.sentences
        )


@dataclass(frozen=True, slots=True)
class NewPiece:
    """A chunk or sentence to store: its span and its vector."""

    start: int
    end: int
    vector: np.ndarray


class DuplicateArticle(Exception):
    """The collection already holds this article (perhaps added by another process a moment ago)."""

    def __init__(self, article: Article, reason: str) -> None:
        super().__init__(f"already stored as #{article.id}")
        self.article = article
        self.reason = reason


def _blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def _digest(table: str, values: Sequence[object]) -> bytes:
    """A checksum of a row's values that changes if any value, or its type, or its table, changes."""
    parts = [table.encode()]
    for value in values:
        if isinstance(value, bytes):
            data = value
        elif isinstance(value, str):
            data = value.encode("utf-8", "surrogateescape")  # undecodable bytes read back as surrogates
        else:
            data = repr(value).encode()
        parts += (type(value).__name__.encode(), b":", len(data).to_bytes(8, "little"), data)
    # One call over the joined parts: the same digest as feeding them one by one, with less overhead per row.
    return hashlib.blake2b(b"".join(parts), digest_size=16).digest()


def _stored(*values: object) -> tuple:
    """Values as SQLite gives them back, so that their checksum matches when they are read."""
    return tuple(
        v if v is None or isinstance(v, bytes) else int(v) if isinstance(v, numbers.Integral) else str(v)
        for v in values
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _quote(row: list) -> Quote:
    """A quote as stored: article id, start, end, focus start, focus end, then (since it was added) weak."""
    return Quote(int(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4]), bool(row[5]) if row[5:] else False)


def _decode(data: bytes) -> str:
    # Damaged text must reach the checksum, not raise inside the driver with the bytes in the message.
    return data.decode("utf-8", "surrogateescape")


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in BUSY_CODES
    return "locked" in str(exc) or "busy" in str(exc)


def _is_damage(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in DAMAGE_CODES
    return any(s in str(exc) for s in ("malformed", "not a database"))


def header_problem(path: Path) -> str | None:
    """Say what is wrong with a database file's 100-byte header, or None if SQLite will read it as written.

    Checks what SQLite would otherwise misread quietly (text encoding, a wrong page count) or refuse to write
    ("attempt to write a readonly database" from a damaged version byte), before anything is opened.
    """
    try:
        with path.open("rb") as handle:
            header = handle.read(100)
            size = os.fstat(handle.fileno()).st_size
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return None  # nothing to check; connecting reports what is wrong
    if size == 0:
        return None  # a new database
    if len(header) < 100 or not header.startswith(HEADER):
        return "it does not begin with a SQLite header"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if not 512 <= page_size <= 65536 or page_size & (page_size - 1):
        return f"its header gives an impossible page size ({page_size})"
    if header[18] not in (1, 2) or header[19] not in (1, 2):
        return f"its header's file format versions (bytes 18-19) are {header[18]} and {header[19]}, not 1 or 2"
    if header[20] != 0 or header[21:24] != b"\x40\x20\x20":
        return "its header's page layout (bytes 20-23) is not the one SQLite writes"
    if int.from_bytes(header[44:48], "big") > 4:
        return "its header's schema format (bytes 44-47) is unknown"
    if int.from_bytes(header[56:60], "big") not in (0, 1):
        return "its header's text encoding (bytes 56-59) is not UTF-8"
    # With a journal or a WAL holding pages, a write or checkpoint may be under way: the size can lag.
    journals = [path.with_name(path.name + suffix) for suffix in ("-wal", "-journal")]
    quiet = all(_size(j) == 0 for j in journals)
    pages = int.from_bytes(header[28:32], "big")
    if quiet and header[24:28] == header[92:96] and pages and size != pages * page_size:
        return f"it is {size:,} bytes long but its header says {pages:,} pages of {page_size:,} bytes"
    return None


class Store:
    """All reads and writes of the database; safe to share between threads and between processes."""

    def __init__(self, path: Path, busy_timeout: float = BUSY_TIMEOUT) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self._damage: str | None = None  # the verdict, once SQLite has reported damage
        self._verdict: str | None = None
        # Rows whose checksum this process has verified: (table, id) -> the values and checksum read then.
        self._checked: dict[tuple[str, object], tuple] = {}
        self._checked_bytes = 0
        problem = header_problem(path)
        for _ in range(3):  # a file caught mid-checkpoint by another process looks different a moment later
            if not problem:
                break
            time.sleep(0.05)
            problem = header_problem(path)
        if problem:
            raise DatabaseDamagedError(path, f"{problem}; integrity_check: {self._read_only_check()}")
        self._db = self._open(busy_timeout)

    def _open(self, busy_timeout: float) -> sqlite3.Connection:
        """Connect, switch to WAL and create the tables, retrying while another process holds a lock."""
        deadline = time.monotonic() + busy_timeout
        while True:
            db = sqlite3.connect(self.path, timeout=busy_timeout, check_same_thread=False, isolation_level=None)
            db.text_factory = _decode
            try:
                mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    log.warning("%s: journal mode is %s, not WAL", self.path, mode)
                db.execute("PRAGMA synchronous = FULL")
                db.executescript(SCHEMA)
                self._upgrade(db)
                problem = _schema_problem(db)
                if problem:
                    raise DatabaseDamagedError(self.path, f"{problem}; integrity_check: {self._check(db)}")
                # Once per process, before anything is read or written: damage to a row's indexed columns can
                # hide it from every query, and only the comparison of tables with their indexes shows that.
                verdict = self._check(db)
                if verdict != "ok":
                    raise DatabaseDamagedError(self.path, f"integrity_check: {verdict}")
            except UnicodeDecodeError as exc:  # SQLite's own message quoted a damaged schema's bytes
                db.close()
                raise DatabaseDamagedError(self.path, f"its schema is not valid UTF-8 ({exc.reason})") from exc
            except sqlite3.DatabaseError as exc:
                if _is_busy(exc) and time.monotonic() < deadline:
                    db.close()
                    time.sleep(random.uniform(0.01, 0.1))  # another process is creating or upgrading it
                    continue
                if _is_damage(exc):
                    verdict = f"SQLite says {exc}; integrity_check: {self._check(db)}"
                    db.close()
                    raise DatabaseDamagedError(self.path, verdict) from exc
                db.close()
                raise
            except BaseException:
                db.close()
                raise
            return db

    def _upgrade(self, db: sqlite3.Connection) -> None:
        """Add the checksum columns to a database made before them; its existing rows stay unchecked."""
        missing = [t for t in CHECKED_COLUMNS if "checksum" not in _columns(db, t)]
        if not missing:
            return
        verdict = self._check(db, quick=True)
        if verdict != "ok":  # never write to a damaged file, not even a new column
            raise DatabaseDamagedError(self.path, f"integrity_check: {verdict}")
        db.execute("BEGIN IMMEDIATE")
        try:
            for table in missing:
                if "checksum" not in _columns(db, table):  # another process may have just done it
                    db.execute(f"ALTER TABLE {table} ADD COLUMN checksum BLOB")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- damage ------------------------------------------------------------------------------

    def _check(self, db: sqlite3.Connection, quick: bool = False) -> str:
        """``PRAGMA integrity_check``'s verdict on one line: "ok", or its first problems."""
        try:
            rows = [str(r[0]) for r in db.execute(f"PRAGMA {'quick' if quick else 'integrity'}_check(3)")]
        except (sqlite3.Error, UnicodeDecodeError) as exc:
            return f"cannot run ({exc})"
        if rows == ["ok"]:
            return "ok"
        verdict = "; ".join(" ".join(r.split()) for r in rows)
        return verdict[:300] + ("..." if len(verdict) > 300 else "")

    def _read_only_check(self) -> str:
        """Check a database without writing anything, not even the WAL index files."""
        try:
            db = sqlite3.connect(f"{self.path.resolve().as_uri()}?immutable=1", uri=True)
        except sqlite3.Error as exc:
            return f"cannot run ({exc})"
        try:
            return self._check(db)
        finally:
            db.close()

    def _verdict_once(self) -> str:
        with self._lock:
            if self._verdict is None:
                self._verdict = self._check(self._db)
            return self._verdict

    def _damaged(self, what: str, remedy: str | None = None) -> DatabaseDamagedError:
        """The error for a row that does not match its checksum: SQLite cannot see that kind of damage."""
        return DatabaseDamagedError(self.path, f"{what}; integrity_check: {self._verdict_once()}", remedy)

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn SQLite's reports of damage into DatabaseDamagedError, and stop using the file after one."""
        if self._damage is not None:
            raise DatabaseDamagedError(self.path, self._damage)
        try:
            yield
        except UnicodeDecodeError as exc:  # SQLite's own message quoted damaged bytes
            self._damage = f"SQLite reported text that is not valid UTF-8 ({exc.reason})"
            raise DatabaseDamagedError(self.path, self._damage) from exc
        except sqlite3.DatabaseError as exc:
            if not _is_damage(exc):
                if getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_READONLY:
                    problem = header_problem(self.path)
                    if problem:
                        self._damage = f"{problem}; integrity_check: {self._read_only_check()}"
                        raise DatabaseDamagedError(self.path, self._damage) from exc
                raise
            with suppress(sqlite3.Error):
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
            self._damage = f"SQLite says {exc}; integrity_check: {self._verdict_once()}"
            raise DatabaseDamagedError(self.path, self._damage) from exc

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._guard():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """Several reads that see the database as it was at the first of them (a read transaction)."""
        with self._lock, self._guard():
            self._db.execute("BEGIN")
            try:
                yield self._db
            finally:
                if self._db.in_transaction:
                    self._db.execute("COMMIT")

    def _query(self, sql: str, params: Sequence | dict = ()) -> list[tuple]:
        with self._lock, self._guard():
            return self._db.execute(sql, params).fetchall()

    def _verify(self, table: str, row_id: object, values: Sequence[object], checksum: object) -> None:
        """Raise if a row's values are not the ones written; rows from before checksums only need valid text.

        A row read again with exactly the values (and checksum) verified before is not hashed again: comparing
        is much cheaper than hashing, and what is used is still exactly what was verified.
        """
        key, row = (table, row_id), (tuple(values), checksum)
        if self._checked.get(key) == row:
            return
        self._check_row(table, row_id, values, checksum)
        size = CHECKED_ROW_BYTES + sum(len(v) for v in values if isinstance(v, bytes | str))
        with self._lock:
            if self._checked_bytes + size > CHECKED_BUDGET:
                self._checked.clear()  # rare; a new round of verifying refills it with what is read now
                self._checked_bytes = 0
            self._checked[key] = row
            self._checked_bytes += size

    def _check_row(self, table: str, row_id: object, values: Sequence[object], checksum: object) -> None:
        if checksum is None:
            intact = all(not isinstance(v, str) or v.isascii() or _valid_utf8(v) for v in values)
            if table in ("chunks", "sentences"):
                vector = values[3]
                typed = [type(v) for v in values] == [int, int, int, bytes]
                intact = intact and typed and isinstance(vector, bytes) and len(vector) % 4 == 0
        else:
            intact = checksum == _digest(table, values)
        if intact:
            return
        if table == "articles":
            raise self._damaged(f"article #{row_id} does not match its checksum", article_remedy(row_id))
        if table == "collections":
            raise self._damaged(f"the record of collection {row_id!r} does not match its checksum")
        raise self._damaged(f"{table[:-1]} #{row_id}'s vector or offsets do not match its checksum", REBUILD_REMEDY)

    def _article(self, row: Sequence, check: bool = True) -> tuple[Article, str]:
        """Build an article from a row of ARTICLE_COLUMNS, after checking it; also return its text."""
        n = len(CHECKED_COLUMNS["articles"])
        article_id, values, checksum, chunks = row[0], row[1 : n + 1], row[n + 1], row[n + 2]
        if check:
            self._verify("articles", article_id, values, checksum)
        collection, title, url, _canonical, byline, published, source, added_by, added_at, text, _hash = values
        article = Article(
            article_id, collection, title, url, byline, published, source, added_by, added_at, len(str(text)), chunks
        )
        return article, str(text)

    def _articles(self, where: str, params: Sequence, check: bool = True) -> list[tuple[Article, str]]:
        rows = self._query(f"SELECT {ARTICLE_COLUMNS} FROM articles a WHERE {where}", params)
        return [self._article(r, check) for r in rows]

    def _pieces(self, table: str, where: str, params: Sequence) -> list[tuple]:
        """Rows of chunks or sentences as (id, article_id, start, end, vector), each checked."""
        rows = self._query(f"SELECT {PIECE_COLUMNS} FROM {table} WHERE {where}", params)
        for r in rows:
            self._verify(table, r[0], r[1:5], r[5])
        return [r[:5] for r in rows]

    # --- collections -------------------------------------------------------------------------

    def collection(self, name: str) -> CollectionInfo:
        rows = self._query("SELECT name, model, dimension, version, checksum FROM collections WHERE name = ?", (name,))
        if not rows:
            return CollectionInfo(name, None, None, 0)
        self._verify("collections", name, rows[0][:4], rows[0][4])
        return CollectionInfo(*rows[0][:4])

    def collections(self) -> list[str]:
        return [r[0] for r in self._query("SELECT name FROM collections ORDER BY name")]

    def _bump(self, db: sqlite3.Connection, name: str, model: str | None = None, dimension: int | None = None) -> None:
        old = self.collection(name)
        row = _stored(
            name,
            model if model is not None else old.model,
            dimension if dimension is not None else old.dimension,
            old.version + 1,
        )
        db.execute(
            "INSERT INTO collections(name, model, dimension, version, checksum) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET model = excluded.model, dimension = excluded.dimension, "
            "version = excluded.version, checksum = excluded.checksum",
            (*row, _digest("collections", row)),
        )

    # --- articles ----------------------------------------------------------------------------

    def find_duplicate(self, collection: str, canonical_url: str | None, text_hash: str) -> tuple[Article, str] | None:
        """Return the stored article this one repeats, and whether the URL or the text matched."""
        if canonical_url:
            found = self._articles("a.collection = ? AND a.canonical_url = ?", (collection, canonical_url))
            if found:
                return found[0][0], "url"
        found = self._articles("a.collection = ? AND a.text_hash = ?", (collection, text_hash))
        return (found[0][0], "text") if found else None

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
        """Store an article with its chunks and sentences in one transaction; return it and its chunk ids.

        Raises DuplicateArticle, storing nothing, if the collection already holds the same URL or text, even
        when another process added it since the caller last looked.
        """
        added_at = datetime.now(UTC).isoformat(timespec="seconds")
        values = _stored(
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
        )
        with self._transaction() as db:
            # Under the write lock nobody can add it between this look and the insert.
            known = self.find_duplicate(collection, canonical_url, text_hash)
            if known:
                raise DuplicateArticle(*known)
            self._bump(db, collection, model, dimension)
            try:
                cursor = db.execute(
                    f"INSERT INTO articles({', '.join(CHECKED_COLUMNS['articles'])}, checksum) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*values, _digest("articles", values)),
                )
            except sqlite3.IntegrityError:
                known = self.find_duplicate(collection, canonical_url, text_hash)
                if known:
                    raise DuplicateArticle(*known) from None
                raise
            article_id = int(cursor.lastrowid or 0)
            chunk_ids = self._insert_pieces(db, article_id, chunks, sentences)
        return self.article(collection, article_id), chunk_ids

    def article(self, collection: str, article_id: int, *, check: bool = True) -> Article:
        """Return an article; ``check=False`` skips its checksum, so that a damaged article can be removed."""
        found = self._articles("a.collection = ? AND a.id = ?", (collection, article_id), check)
        if not found:
            raise ArticleNotFoundError(article_id, collection)
        return found[0][0]

    def articles(self, collection: str, *, limit: int | None = None, offset: int = 0) -> list[Article]:
        found = self._articles(
            "a.collection = ? ORDER BY a.id DESC LIMIT ? OFFSET ?", (collection, -1 if limit is None else limit, offset)
        )
        return [article for article, _ in found]

    def search_titles(self, collection: str, needle: str, limit: int = 25) -> list[Article]:
        pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        found = self._articles(
            "a.collection = ? AND a.title LIKE ? ESCAPE '\\' ORDER BY a.id DESC LIMIT ?", (collection, pattern, limit)
        )
        return [article for article, _ in found]

    def article_text(self, article_id: int) -> str:
        found = self._articles("a.id = ?", (article_id,))
        return found[0][1] if found else ""

    def article_texts(self, collection: str) -> Iterator[tuple[int, str]]:
        for article, text in self._articles("a.collection = ? ORDER BY a.id", (collection,)):
            yield article.id, text

    def remove_article(self, collection: str, article_id: int) -> tuple[Article, list[int]]:
        """Delete an article with its chunks and sentences; return it and the chunk ids that went.

        Its checksum is not checked: removing is how a damaged article is got rid of.
        """
        with self._transaction() as db:
            article = self.article(collection, article_id, check=False)
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
            {"c": collection},
        )[0]
        return int(row[0]), int(row[1]), int(row[2])

    # --- chunks, sentences and their vectors -------------------------------------------------

    def chunk_vectors(self, collection: str) -> tuple[np.ndarray, np.ndarray]:
        """Return every chunk id of a collection and the matching vectors."""
        rows = self._pieces(
            "chunks", "article_id IN (SELECT id FROM articles WHERE collection = ?) ORDER BY id", (collection,)
        )
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        if not rows:
            return ids, np.zeros((0, 0), dtype=np.float32)
        return ids, np.vstack([np.frombuffer(r[4], dtype=np.float32) for r in rows])

    def chunk_texts(self, collection: str) -> tuple[list[int], list[str]]:
        """Return every chunk id of a collection with its text, for the lexical index.

        Neither article texts nor chunk offsets are checked here (nor are the vectors read): ranking words never
        reach a user, what is quoted is read and checked again, and one damaged article must not stop every
        question (quoting it is refused) nor its own removal. Both reads see the same snapshot of the database.
        """
        with self._snapshot() as db:
            texts = {
                int(r[0]): str(r[1])
                for r in db.execute("SELECT id, text FROM articles WHERE collection = ?", (collection,))
            }
            rows = db.execute(
                "SELECT c.id, c.article_id, c.start, c.end FROM chunks c JOIN articles a ON a.id = c.article_id "
                "WHERE a.collection = ? ORDER BY c.id",
                (collection,),
            ).fetchall()
        rows = [r for r in rows if r[1] in texts]
        return [int(r[0]) for r in rows], [texts[r[1]][r[2] : r[3]] for r in rows]

    def chunks(self, collection: str, ids: Sequence[int]) -> dict[int, ChunkRow]:
        """Return the chunks of ``collection`` among ``ids``; ids of other collections are ignored."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        # Each row's article looked up by its key: ``article_id IN (SELECT ...)`` would list the whole collection.
        rows = self._pieces(
            "chunks",
            f"id IN ({marks}) AND (SELECT collection FROM articles a WHERE a.id = article_id) = ?",
            (*ids, collection),
        )
        return {int(r[0]): ChunkRow(*r[:4]) for r in rows}

    def passages(self, collection: str, chunk_ids: Sequence[int]) -> Passages:
        """Read what answering from these chunks needs, in one read transaction; every row used is checked.

        Chunks of other collections, or gone, are left out. The sentences are one query per chunk: SQLite answers
        each from its index faster than one query that joins them all.
        """
        if not chunk_ids:
            return Passages({}, {}, {})
        piece_query = (
            f"SELECT {PIECE_COLUMNS} FROM sentences WHERE article_id = ? AND start < ? AND end > ? ORDER BY start"
        )
        with self._snapshot() as db:
            chunk_rows = db.execute(
                f"SELECT {PIECE_COLUMNS} FROM chunks WHERE id IN ({','.join('?' * len(chunk_ids))}) "
                "AND (SELECT collection FROM articles a WHERE a.id = article_id) = ?",
                (*chunk_ids, collection),
            ).fetchall()
            wanted = sorted({r[1] for r in chunk_rows})
            # By key only: with the collection in the condition SQLite would scan the collection's index.
            article_rows = db.execute(
                f"SELECT {ARTICLE_COLUMNS} FROM articles a WHERE a.id IN ({','.join('?' * len(wanted))})", wanted
            ).fetchall()
            sentence_rows = {r[0]: db.execute(piece_query, (r[1], r[3], r[2])).fetchall() for r in chunk_rows}
        for r in chunk_rows:
            self._verify("chunks", r[0], r[1:5], r[5])
        articles = {article.id: (article, text) for article, text in map(self._article, article_rows)}
        chunks = {int(r[0]): ChunkRow(*r[:4]) for r in chunk_rows if r[1] in articles}
        made: dict[int, SentenceRow] = {}
        sentences: dict[int, list[SentenceRow]] = {}
        for chunk_id in chunks:
            found = sentences[chunk_id] = []
            for r in sentence_rows[chunk_id]:
                sentence = made.get(r[0])
                if sentence is None:
                    self._verify("sentences", r[0], r[1:5], r[5])
                    sentence = made[r[0]] = SentenceRow(r[0], r[1], r[2], r[3], np.frombuffer(r[4], dtype=np.float32))
                found.append(sentence)
        return Passages(chunks, articles, sentences)

    def sentences(self, article_id: int, start: int, end: int) -> list[SentenceRow]:
        """Return the sentences of an article that overlap ``[start, end)``, in order, with vectors."""
        rows = self._pieces(
            "sentences", "article_id = ? AND start < ? AND end > ? ORDER BY start", (article_id, end, start)
        )
        return [SentenceRow(r[0], r[1], r[2], r[3], np.frombuffer(r[4], dtype=np.float32)) for r in rows]

    def replace_pieces(
        self,
        collection: str,
        pieces: Mapping[int, tuple[Sequence[NewPiece], Sequence[NewPiece]]],
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
        def row(table: str, piece: NewPiece) -> tuple:
            values = _stored(article_id, piece.start, piece.end, _blob(piece.vector))
            return (*values, _digest(table, values))

        insert = "(article_id, start, end, vector, checksum) VALUES (?, ?, ?, ?, ?)"
        chunk_ids = [int(db.execute(f"INSERT INTO chunks{insert}", row("chunks", c)).lastrowid or 0) for c in chunks]
        db.executemany(f"INSERT INTO sentences{insert}", [row("sentences", s) for s in sentences])
        return chunk_ids

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file())

    # --- answers and votes -------------------------------------------------------------------
    # What was quoted for a question (so that follow-ups, "More" and votes know it), the votes on it, and the
    # channels whose links are added by themselves. None of it changes a collection's version: no index
    # depends on it. Answers and votes are checksummed like articles; an export must not trust damaged offsets.

    ANSWER_COLUMNS = ("collection", "question", "answered", "scope", "quotes", "parent_id", "asked_by", "asked_at")
    VOTE_COLUMNS = ("answer_id", "voter", "vote", "voted_at")

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
        values = _stored(
            collection,
            question,
            answered,
            None if scope is None else json.dumps([int(a) for a in scope]),
            json.dumps([[q.article_id, q.start, q.end, q.focus_start, q.focus_end, q.weak] for q in quotes]),
            parent_id,
            asked_by,
            _now(),
        )
        with self._transaction() as db:
            cursor = db.execute(
                f"INSERT INTO answers({', '.join(self.ANSWER_COLUMNS)}, checksum) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*values, _digest("answers", values)),
            )
        return int(cursor.lastrowid or 0)

    def _answer_record(self, row: Sequence) -> AnswerRecord:
        answer_id, values, checksum = row[0], tuple(row[1:9]), row[9]
        if checksum != _digest("answers", values):
            raise self._damaged(f"the record of answer #{answer_id} does not match its checksum")
        collection, question, answered, scope, quotes, parent_id, asked_by, asked_at = values
        return AnswerRecord(
            int(answer_id),
            str(collection),
            str(question),
            bool(answered),
            None if scope is None else tuple(int(a) for a in json.loads(str(scope))),
            tuple(_quote(q) for q in json.loads(str(quotes))),
            None if parent_id is None else int(parent_id),
            None if asked_by is None else str(asked_by),
            str(asked_at),
        )

    def _answers(self, where: str, params: Sequence) -> list[AnswerRecord]:
        columns = ", ".join(f"a.{c}" for c in ("id", *self.ANSWER_COLUMNS, "checksum"))
        return [self._answer_record(r) for r in self._query(f"SELECT {columns} FROM answers a WHERE {where}", params)]

    def answer(self, answer_id: int) -> AnswerRecord | None:
        found = self._answers("a.id = ?", (answer_id,))
        return found[0] if found else None

    def add_answer_messages(self, answer_id: int, channel_id: str, message_ids: Sequence[str]) -> None:
        """Remember where an answer was shown, so that a reply to any of its messages finds it."""
        with self._transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO answer_messages(message_id, answer_id, channel_id) VALUES (?, ?, ?)",
                [(str(m), answer_id, str(channel_id)) for m in message_ids],
            )

    def answer_for_message(self, message_id: str) -> AnswerRecord | None:
        found = self._answers("a.id = (SELECT answer_id FROM answer_messages WHERE message_id = ?)", (str(message_id),))
        return found[0] if found else None

    def latest_answer_in(self, channel_id: str) -> AnswerRecord | None:
        found = self._answers(
            "a.id = (SELECT max(answer_id) FROM answer_messages WHERE channel_id = ?)", (str(channel_id),)
        )
        return found[0] if found else None

    def set_vote(self, answer_id: int, voter: str, vote: int) -> None:
        """Record one person's vote (+1 or -1) on an answer, replacing their earlier one."""
        values = _stored(answer_id, voter, 1 if vote > 0 else -1, _now())
        with self._transaction() as db:
            db.execute(
                f"INSERT INTO votes({', '.join(self.VOTE_COLUMNS)}, checksum) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(answer_id, voter) DO UPDATE SET vote = excluded.vote, voted_at = excluded.voted_at, "
                "checksum = excluded.checksum",
                (*values, _digest("votes", values)),
            )

    def _vote_rows(self, where: str, params: Sequence) -> list[tuple[int, int]]:
        """(answer id, vote) of the matching votes, each checked."""
        columns = ", ".join(f"v.{c}" for c in (*self.VOTE_COLUMNS, "checksum"))
        rows = self._query(f"SELECT {columns} FROM votes v JOIN answers a ON a.id = v.answer_id WHERE {where}", params)
        for r in rows:
            if r[4] != _digest("votes", tuple(r[:4])):
                raise self._damaged(f"a vote on answer #{r[0]} does not match its checksum")
        return [(int(r[0]), int(r[2])) for r in rows]

    def votes(self, answer_id: int) -> Votes:
        rows = self._vote_rows("v.answer_id = ?", (answer_id,))
        return Votes(sum(v > 0 for _, v in rows), sum(v < 0 for _, v in rows))

    def votes_since(self, collection: str, since: str) -> Votes:
        """The votes cast (or last changed) at ``since`` or later on a collection's answers."""
        rows = self._vote_rows("a.collection = ? AND v.voted_at >= ?", (collection, since))
        return Votes(sum(v > 0 for _, v in rows), sum(v < 0 for _, v in rows))

    def voted_answers(self, collection: str | None = None) -> list[tuple[AnswerRecord, Votes]]:
        """Every answer someone voted on, oldest first, with its votes."""
        rows = self._vote_rows("a.collection = ?" if collection else "1", (collection,) if collection else ())
        tally: dict[int, list[int]] = {}
        for answer_id, vote in rows:
            tally.setdefault(answer_id, []).append(vote)
        records = self._answers(f"a.id IN ({','.join('?' * len(tally))}) ORDER BY a.id", list(tally)) if tally else []
        return [(r, Votes(sum(v > 0 for v in tally[r.id]), sum(v < 0 for v in tally[r.id]))) for r in records]

    def set_watch(self, channel_id: str, collection: str, on: bool, added_by: str | None = None) -> None:
        with self._transaction() as db:
            if on:
                db.execute(
                    "INSERT OR REPLACE INTO watched_channels(channel_id, collection, added_by, added_at) "
                    "VALUES (?, ?, ?, ?)",
                    (str(channel_id), collection, added_by, _now()),
                )
            else:
                db.execute(
                    "DELETE FROM watched_channels WHERE channel_id = ? AND collection = ?",
                    (str(channel_id), collection),
                )

    def watched_channels(self, collection: str | None = None) -> dict[str, str]:
        """Channel id -> collection, for the channels whose links are added by themselves."""
        rows = self._query(
            "SELECT channel_id, collection FROM watched_channels" + (" WHERE collection = ?" if collection else ""),
            (collection,) if collection else (),
        )
        return {str(r[0]): str(r[1]) for r in rows}

    def article_chunk_vectors(self, collection: str, article_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Return the chunk ids and vectors of some of a collection's articles (a question limited to them)."""
        if not article_ids:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        marks = ",".join("?" * len(article_ids))
        rows = self._pieces(
            "chunks",
            f"article_id IN ({marks}) AND (SELECT collection FROM articles a WHERE a.id = article_id) = ? ORDER BY id",
            (*article_ids, collection),
        )
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        if not rows:
            return ids, np.zeros((0, 0), dtype=np.float32)
        return ids, np.vstack([np.frombuffer(r[4], dtype=np.float32) for r in rows])

    def collection_bytes(self, collection: str) -> int:
        """What one collection's texts and vectors take in the database (not counting SQLite's own overhead)."""
        row = self._query(
            "SELECT (SELECT coalesce(sum(length(CAST(text AS BLOB))), 0) FROM articles WHERE collection = :c), "
            "(SELECT coalesce(sum(length(vector)), 0) FROM chunks JOIN articles a ON a.id = chunks.article_id "
            "WHERE a.collection = :c), "
            "(SELECT coalesce(sum(length(vector)), 0) FROM sentences JOIN articles a ON a.id = sentences.article_id "
            "WHERE a.collection = :c)",
            {"c": collection},
        )[0]
        return int(row[0]) + int(row[1]) + int(row[2])

    # --- feeds -------------------------------------------------------------------------------
    # A feed's row changes at every poll. Its entries seen are kept by the feed's canonical URL and never deleted,
    # not even with the feed: an article removed on purpose is not added again by a poll, nor by following the
    # same feed anew.

    _FEED_COLUMNS = (
        "collection", "url", "canonical_url", "title", "notify", "added_by", "added_at", "etag", "last_modified",
        "last_ok", "last_error", "failures", "next_poll", "pending",
    )  # fmt: skip
    _ENTRY_COLUMNS = (
        "collection", "feed_url", "entry_key", "link", "outcome", "article_id", "error", "attempts", "seen_at",
    )  # fmt: skip

    def _feed_rows(self, where: str, params: Sequence, check: bool = True) -> list[Feed]:
        columns = ", ".join(f"f.{c}" for c in self._FEED_COLUMNS)
        added = (
            "SELECT count(*) FROM feed_entries e WHERE e.collection = f.collection AND e.feed_url = f.canonical_url "
            "AND e.outcome = 'added'"
        )
        rows = self._query(f"SELECT f.id, {columns}, f.checksum, ({added}) FROM feeds f WHERE {where}", params)
        feeds = []
        for row in rows:
            feed_id, values, checksum, count = row[0], row[1:-2], row[-2], row[-1]
            if check and checksum != _digest("feeds", values):
                remedy = f"Remove feed #{feed_id} (`python -m index feed remove {feed_id}`) and add it again."
                raise self._damaged(f"feed #{feed_id} does not match its checksum", remedy)
            collection, url, _canonical, title, notify, added_by, added_at, *state = values
            etag, modified, last_ok, last_error, failures, next_poll, pending = state
            feeds.append(
                Feed(
                    feed_id, collection, url, title, notify, added_by, added_at, etag, modified, last_ok, last_error,
                    failures, next_poll, pending, added=count,
                )
            )  # fmt: skip
        return feeds

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

        Raises TooManyFeedsError if the collection follows ``limit`` feeds already.
        """
        nothing_yet = (None, None, None, None, 0)  # etag, last_modified, last_ok, last_error, failures
        values = _stored(collection, url, canonical_url, title, notify, added_by, now, *nothing_yet, now, 0)
        with self._transaction() as db:
            found = self._feed_rows("f.collection = ? AND f.canonical_url = ?", (collection, canonical_url))
            if found:
                return found[0], True
            if db.execute("SELECT count(*) FROM feeds WHERE collection = ?", (collection,)).fetchone()[0] >= limit:
                raise TooManyFeedsError(limit)
            marks = ", ".join("?" * (len(values) + 1))
            cursor = db.execute(
                f"INSERT INTO feeds({', '.join(self._FEED_COLUMNS)}, checksum) VALUES ({marks})",
                (*values, _digest("feeds", values)),
            )
            feed_id = int(cursor.lastrowid or 0)
        return self.feed(collection, feed_id), False

    def feed(self, collection: str, feed_id: int, *, check: bool = True) -> Feed:
        found = self._feed_rows("f.collection = ? AND f.id = ?", (collection, feed_id), check)
        if not found:
            raise FeedNotFoundError(feed_id)
        return found[0]

    def feeds(self, collection: str) -> list[Feed]:
        return self._feed_rows("f.collection = ? ORDER BY f.id", (collection,))

    def due_feeds(self, now: str) -> list[Feed]:
        """Every collection's feeds whose next poll is due at ``now``, the longest overdue first."""
        return self._feed_rows("f.next_poll <= ? ORDER BY f.next_poll, f.id", (now,))

    def remove_feed(self, collection: str, feed_id: int) -> Feed:
        """Stop following a feed (its checksum unchecked, so a damaged one can go); its entries seen stay."""
        with self._transaction() as db:
            feed = self.feed(collection, feed_id, check=False)
            db.execute("DELETE FROM feeds WHERE id = ?", (feed_id,))
        return feed

    def update_feed(self, collection: str, feed_id: int, **changes: object) -> Feed | None:
        """Change some of a feed's columns (e.g. after a poll); None if it was removed meanwhile."""
        unknown = set(changes) - set(self._FEED_COLUMNS[7:]) - {"title"}
        if unknown:
            raise ValueError(f"not a feed column that changes: {sorted(unknown)}")
        with self._transaction() as db:
            try:
                feed = self.feed(collection, feed_id)
            except FeedNotFoundError:
                return None
            row = db.execute(f"SELECT {', '.join(self._FEED_COLUMNS)} FROM feeds WHERE id = ?", (feed_id,)).fetchone()
            current = dict(zip(self._FEED_COLUMNS, row, strict=True))
            values = _stored(*(changes.get(c, current[c]) for c in self._FEED_COLUMNS))
            assignments = ", ".join(f"{c} = ?" for c in self._FEED_COLUMNS)
            db.execute(
                f"UPDATE feeds SET {assignments}, checksum = ? WHERE id = ?",
                (*values, _digest("feeds", values), feed.id),
            )
        return self.feed(collection, feed_id)

    def seen_entries(self, collection: str, feed_url: str) -> dict[str, tuple[str | None, str, int]]:
        """The entries of a feed (by its canonical URL) seen so far: key -> (canonical link, outcome, attempts)."""
        columns = ", ".join(self._ENTRY_COLUMNS)
        rows = self._query(
            f"SELECT {columns}, checksum FROM feed_entries WHERE collection = ? AND feed_url = ?",
            (collection, feed_url),
        )
        seen: dict[str, tuple[str | None, str, int]] = {}
        for row in rows:
            values, checksum = row[:-1], row[-1]
            if checksum != _digest("feed_entries", values):
                raise self._damaged(f"an entry seen of feed {feed_url} does not match its checksum")
            _collection, _feed, key, link, outcome, _article, _error, attempts, _seen = values
            seen[str(key)] = (link, str(outcome), int(attempts))
        return seen

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
        """Remember what became of one entry of a feed, replacing what an earlier attempt recorded."""
        values = _stored(collection, feed_url, key, link, outcome, article_id, error, attempts, now)
        marks = ", ".join("?" * (len(values) + 1))
        with self._transaction() as db:
            db.execute(
                f"INSERT OR REPLACE INTO feed_entries({', '.join(self._ENTRY_COLUMNS)}, checksum) VALUES ({marks})",
                (*values, _digest("feed_entries", values)),
            )


def _shape(db: sqlite3.Connection) -> dict[str, object]:
    """How SQLite understands our tables: columns, indexes, foreign keys (not the text they were written in)."""
    shape: dict[str, object] = {}
    for table in CHECKED_COLUMNS:
        indexes = sorted(tuple(r[1:]) for r in db.execute(f"PRAGMA index_list({table})"))
        shape[table] = (
            [tuple(r) for r in db.execute(f"PRAGMA table_xinfo({table})")],
            [(i, [tuple(r) for r in db.execute(f"PRAGMA index_xinfo({i[0]})")]) for i in indexes],
            sorted(tuple(r) for r in db.execute(f"PRAGMA foreign_key_list({table})")),
        )
    return shape


_EXPECTED_SHAPE: dict[str, object] = {}


def _schema_problem(db: sqlite3.Connection) -> str | None:
    """Say what is wrong with the tables' definitions, e.g. a damaged byte in the schema's text, or None."""
    if not _EXPECTED_SHAPE:
        fresh = sqlite3.connect(":memory:")
        fresh.executescript(SCHEMA)
        _EXPECTED_SHAPE.update(_shape(fresh))
        fresh.close()
    found = _shape(db)
    for table, expected in _EXPECTED_SHAPE.items():
        if found[table] != expected:
            return f"the definition of table {table} is not the one this program writes"
    roots = [r[0] for r in db.execute("SELECT rootpage FROM sqlite_master WHERE rootpage IS NOT NULL AND rootpage > 0")]
    if len(roots) != len(set(roots)):
        return "two tables or indexes claim the same page"
    return None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {str(r[1]) for r in db.execute(f"PRAGMA table_info({table})")}


def _valid_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
