"""Collections of a given size for the benchmarks: real articles, then copies of them with jittered vectors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from benchmarks._pg import add_copies
from index.embedding import Embedder
from index.models import ExtractedArticle
from index.pg_store import PgStore
from index.service import Engine
from index.settings import Settings
from index.store import NewPiece

# Gaussian noise of this scale per dimension moves a 384-dimension unit vector to a cosine of about 0.9.
JITTER = 0.025


def load_squad(path: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """(title, text) of each article of a SQuAD v1.1 file, and its questions."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    articles = [
        (
            entry.get("title", "").replace("_", " ") or f"article {n}",
            "\n\n".join(p["context"] for p in entry["paragraphs"]),
        )
        for n, entry in enumerate(data)
    ]
    questions = [qa["question"] for entry in data for p in entry["paragraphs"] for qa in p["qas"]]
    return articles, questions


def spread(items: list[str], count: int) -> list[str]:
    """``count`` items taken evenly across ``items`` (every article gets its share of questions)."""
    step = max(1, len(items) // max(1, count))
    return items[::step][:count]


def build(
    settings: Settings, embedder: Embedder, articles: list[tuple[str, str]], chunks_wanted: int, collection: str
) -> int:
    """Add ``articles`` to ``collection`` for real, then copies of them (same text, vectors jittered) until it holds
    at least ``chunks_wanted`` chunks; return how many it holds. A collection already that big is left as it is."""
    engine = Engine(settings, embedder)
    try:
        held = engine.store.counts(collection)[1]
        if held >= chunks_wanted:
            return held
        if not held:
            for title, text in articles:
                engine.add_text(text, collection, title=title)
        store = engine.store
        ids, matrix = store.chunk_vectors(collection)
        vectors = dict(zip((int(i) for i in ids), matrix, strict=True))
        rows = store.chunks(collection, list(vectors))
        originals = []
        for article_id, text in list(store.article_texts(collection))[: len(articles)]:
            article = store.article(collection, article_id)
            chunks = [
                NewPiece(r.start, r.end, vectors[i]) for i, r in sorted(rows.items()) if r.article_id == article_id
            ]
            sentences = [NewPiece(s.start, s.end, s.vector) for s in store.sentences(article_id, 0, len(text))]
            originals.append((ExtractedArticle(text, article.title), chunks, sentences))
        rng = np.random.default_rng(0)
        held = store.counts(collection)[1]
        if isinstance(store, PgStore):  # one INSERT per chunk into a live HNSW index would take many minutes
            return add_copies(
                store, collection, originals, held=held, chunks_wanted=chunks_wanted, jitter=JITTER, rng=rng
            )
        copy = 0
        while held < chunks_wanted:
            copy += 1
            for extracted, chunks, sentences in originals:
                store.add_article(
                    collection,
                    ExtractedArticle(extracted.text, f"{extracted.title} (copy {copy})"),
                    canonical_url=None,
                    text_hash=f"benchmark copy {copy} of {extracted.title}",
                    added_by=None,
                    chunks=[NewPiece(c.start, c.end, _jitter(c.vector, rng)) for c in chunks],
                    sentences=[NewPiece(s.start, s.end, _jitter(s.vector, rng)) for s in sentences],
                    model=embedder.name,
                    dimension=embedder.dimension,
                )
                held += len(chunks)
                if held >= chunks_wanted:
                    break
        return held
    finally:
        engine.close()


def _jitter(vector: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    moved = vector + rng.normal(0.0, JITTER, vector.shape).astype(np.float32)
    return (moved / np.linalg.norm(moved)).astype(np.float32)
