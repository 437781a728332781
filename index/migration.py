"""Copy an embedded data directory (SQLite) into PostgreSQL, vectors and feeds included: nothing is embedded again.

Idempotent: an article already in PostgreSQL (same collection and URL or text) is skipped, so a copy that
stopped half-way is finished by running it again. Article ids are kept where PostgreSQL has not used them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from index import sources
from index.models import ExtractedArticle
from index.pg_store import PgStore
from index.store import DuplicateArticle, NewPiece, Store


@dataclass(frozen=True, slots=True)
class CopyResult:
    collections: int
    copied: int
    skipped: int


def copy_to_postgresql(
    store: Store, target: PgStore, progress: Callable[[str, int, int], None] | None = None
) -> CopyResult:
    """Copy every collection's articles, chunks, sentences and vectors from ``store`` into ``target``."""
    copied = skipped = 0
    names = store.collections()
    for name in names:
        info = store.collection(name)
        if not info.model or not info.dimension:
            continue
        articles = {a.id: a for a in store.articles(name)}
        chunk_ids, matrix = store.chunk_vectors(name)
        vectors = dict(zip(chunk_ids.tolist(), matrix, strict=True))
        rows = store.chunks(name, list(vectors))
        for done, (article_id, text) in enumerate(store.article_texts(name), start=1):
            article = articles[article_id]
            canonical = sources.canonical_url(article.url) if article.url else None
            fingerprint = sources.text_fingerprint(text)
            if target.find_duplicate(name, canonical, fingerprint):
                skipped += 1
                continue
            chunks = sorted(
                (NewPiece(r.start, r.end, vectors[r.id]) for r in rows.values() if r.article_id == article_id),
                key=lambda p: p.start,
            )
            sentences = [NewPiece(s.start, s.end, s.vector) for s in store.sentences(article_id, 0, len(text))]
            id_taken = bool(target._query("SELECT 1 FROM articles WHERE id = %s", (article_id,)))
            try:
                target.add_article(
                    name,
                    ExtractedArticle(
                        text, article.title, article.url, article.byline, article.published, article.source
                    ),
                    canonical_url=canonical,
                    text_hash=fingerprint,
                    added_by=article.added_by,
                    chunks=chunks,
                    sentences=sentences,
                    model=info.model,
                    dimension=info.dimension,
                    keep=None if id_taken else article,
                )
                copied += 1
            except DuplicateArticle:  # another copy running at the same time stored it first
                skipped += 1
            if progress:
                progress(name, done, len(articles))
        copy_feeds(store, target, name)
    target.after_copy()
    return CopyResult(len(names), copied, skipped)


def copy_feeds(store: Store, target: PgStore, collection: str) -> None:
    """Copy a collection's feeds, where their polling stands, and every entry seen (of feeds followed or not).

    The entries seen are what keeps an article removed on purpose from coming back with the next poll.
    """
    for feed in store.feeds(collection):
        canonical = sources.canonical_url(feed.url)
        copied, _ = target.add_feed(
            collection,
            feed.url,
            canonical,
            title=feed.title,
            added_by=feed.added_by,
            notify=feed.notify,
            now=feed.added_at,
            limit=len(store.feeds(collection)) + len(target.feeds(collection)),
        )
        target.update_feed(
            collection,
            copied.id,
            etag=feed.etag,
            last_modified=feed.last_modified,
            last_ok=feed.last_ok,
            last_error=feed.last_error,
            failures=feed.failures,
            next_poll=feed.next_poll,
            pending=feed.pending,
        )
    entries = store._query(
        "SELECT feed_url, entry_key, link, outcome, article_id, error, attempts, seen_at FROM feed_entries "
        "WHERE collection = ? ORDER BY feed_url, entry_key",
        (collection,),
    )
    for feed_url, key, link, outcome, article_id, error, attempts, seen_at in entries:
        target.record_entry(
            collection,
            feed_url,
            key,
            link=link,
            outcome=outcome,
            article_id=article_id,
            error=error,
            attempts=attempts,
            now=seen_at,
        )
