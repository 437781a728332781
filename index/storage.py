"""What the engine needs from storage and from retrieval, whichever backend holds the data.

Two backends: the embedded one (``index.store.Store``, SQLite, with ``index.retrieval.EmbeddedRetrieval``
keeping FAISS and BM25 in memory) and the server one (``index.pg_store.PgStore`` with
``index.pg_store.PgRetrieval``: PostgreSQL with pgvector ranks in SQL). ``open_storage`` picks by the settings.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from index.feedback import AnswerRecord, Quote, Votes
from index.models import Article, ExtractedArticle, Feed
from index.store import ChunkRow, CollectionInfo, NewPiece, Passages, SentenceRow

if TYPE_CHECKING:
    from index.settings import Settings


class Storage(Protocol):
    """The source of truth: articles, their chunks and sentences with vectors, a version per collection.

    Every write to a collection's articles or pieces increments its version in the same transaction, so that a
    reader holding derived state can tell, cheaply, that it is stale. ``add_article`` raises
    ``index.store.DuplicateArticle`` (storing nothing) when the collection already holds the URL or the text.
    """

    def close(self) -> None: ...
    def collection(self, name: str) -> CollectionInfo: ...
    def collections(self) -> list[str]: ...
    def find_duplicate(
        self, collection: str, canonical_url: str | None, text_hash: str
    ) -> tuple[Article, str] | None: ...
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
    ) -> tuple[Article, list[int]]: ...
    def article(self, collection: str, article_id: int, *, check: bool = True) -> Article: ...
    def articles(self, collection: str, *, limit: int | None = None, offset: int = 0) -> list[Article]: ...
    def search_titles(self, collection: str, needle: str, limit: int = 25) -> list[Article]: ...
    def article_text(self, article_id: int) -> str: ...
    def article_texts(self, collection: str) -> Iterator[tuple[int, str]]: ...
    def remove_article(self, collection: str, article_id: int) -> tuple[Article, list[int]]: ...
    def has_articles(self, collection: str) -> bool: ...
    def counts(self, collection: str) -> tuple[int, int, int]: ...
    def chunk_vectors(self, collection: str) -> tuple[np.ndarray, np.ndarray]: ...
    def chunk_texts(self, collection: str) -> tuple[list[int], list[str]]: ...
    def chunks(self, collection: str, ids: Sequence[int]) -> dict[int, ChunkRow]: ...
    def sentences(self, article_id: int, start: int, end: int) -> list[SentenceRow]: ...
    def passages(self, collection: str, chunk_ids: Sequence[int]) -> Passages:
        """The chunks among ``chunk_ids`` still in the collection, their articles and the sentences they overlap."""
        ...

    def article_chunk_vectors(self, collection: str, article_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]: ...
    def replace_pieces(
        self,
        collection: str,
        pieces: Mapping[int, tuple[Sequence[NewPiece], Sequence[NewPiece]]],
        model: str,
        dimension: int,
    ) -> None: ...
    def size_bytes(self) -> int: ...
    def collection_bytes(self, collection: str) -> int: ...
    # answers, votes, watched channels
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
    ) -> int: ...
    def answer(self, answer_id: int) -> AnswerRecord | None: ...
    def add_answer_messages(self, answer_id: int, channel_id: str, message_ids: Sequence[str]) -> None: ...
    def answer_for_message(self, message_id: str) -> AnswerRecord | None: ...
    def latest_answer_in(self, channel_id: str) -> AnswerRecord | None: ...
    def set_vote(self, answer_id: int, voter: str, vote: int) -> None: ...
    def votes(self, answer_id: int) -> Votes: ...
    def votes_since(self, collection: str, since: str) -> Votes: ...
    def voted_answers(self, collection: str | None = None) -> list[tuple[AnswerRecord, Votes]]: ...
    def set_watch(self, channel_id: str, collection: str, on: bool, added_by: str | None = None) -> None: ...
    def watched_channels(self, collection: str | None = None) -> dict[str, str]: ...
    # feeds
    def feed(self, collection: str, feed_id: int, *, check: bool = True) -> Feed: ...
    def feeds(self, collection: str) -> list[Feed]: ...
    def remove_feed(self, collection: str, feed_id: int) -> Feed: ...
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
    ) -> tuple[Feed, bool]: ...
    def due_feeds(self, now: str) -> list[Feed]: ...
    def update_feed(self, collection: str, feed_id: int, **changes: object) -> Feed | None: ...
    def seen_entries(self, collection: str, feed_url: str) -> dict[str, tuple[str | None, str, int]]: ...
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
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class Retrieved:
    """Chunk ids ranked by meaning and by words, and the word weights (idf) for scoring excerpts."""

    dense: list[tuple[int, float]]
    lexical: list[tuple[int, float]]
    idf: Callable[[str], float]
    early: Passages | None = None  # what ``search`` was asked to read of the best chunks by words


class Retrieval(Protocol):
    """Ranking over a collection's chunks, kept in step with the storage's writes."""

    def search(
        self,
        collection: str,
        query: Callable[[], np.ndarray],
        query_tokens: list[str],
        scope: tuple[int, ...] | None,
        read: Callable[[list[int]], Passages] | None = None,
    ) -> Retrieved:
        """Rank chunks by meaning and by words. ``query()`` computes the question's vector; what needs only the
        words runs on another thread meanwhile, ``read(chunk_ids)`` too (without a scope), given the chunks by
        words, best first: it comes back as ``Retrieved.early``."""
        ...

    def before_write(self, collection: str) -> object:
        """Called under the engine's write lock before a write; what it returns is given to ``after_write``."""
        ...

    def after_write(
        self,
        collection: str,
        before: object,
        *,
        added: tuple[list[int], np.ndarray] | None = None,
        added_texts: list[str] | None = None,
        removed: list[int] | None = None,
    ) -> None: ...
    def reset(self, collection: str) -> None:
        """The collection's pieces were all replaced (a rebuild)."""
        ...

    def index_bytes(self, collection: str) -> int: ...
    def close(self) -> None:
        """Let the threads it ranks words on go (questions under way finish first)."""
        ...


def open_storage(settings: Settings, dimension: Callable[[], int], lock: threading.RLock) -> tuple[Storage, Retrieval]:
    """The backend the settings name: PostgreSQL if ``database_url`` is set, else SQLite in ``data_dir``."""
    if settings.database_url:
        from index.pg_store import PgRetrieval, PgStore

        pg = PgStore(settings.database_url)
        return pg, PgRetrieval(pg)
    from index.retrieval import EmbeddedRetrieval
    from index.store import Store

    store = Store(settings.db_path)
    return store, EmbeddedRetrieval(settings, store, dimension, lock)
