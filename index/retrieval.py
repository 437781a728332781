"""Retrieval: rank a collection's chunks by meaning and by words, and fuse the two rankings.

Two implementations behind ``index.storage.Retrieval``: ``EmbeddedRetrieval`` keeps a FAISS index and a BM25
index per collection in memory, derived from SQLite; ``index.pg_store.PgRetrieval`` asks PostgreSQL.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import faiss
import numpy as np

from index.lexical import LexicalIndex
from index.settings import Settings
from index.storage import Retrieved, Storage
from index.store import Passages
from index.vectors import VectorIndex, prepare_directory

log = logging.getLogger(__name__)

DENSE_CANDIDATES = 30
LEXICAL_CANDIDATES = 30
RRF_K = 60
ID_BYTES = 8 + 32  # an IndexIDMap2 keeps each id in a vector and in a reverse hash map
POSTING_BYTES = 50  # a BM25 posting (slot, frequency) plus its share of the chunk's token list and the counters


@dataclass(slots=True)
class _Loaded:
    """What is kept in memory for one collection, valid for one database version."""

    version: int
    vectors: VectorIndex
    lexical: LexicalIndex

    def footprint(self) -> int:
        """An estimate of the memory both indexes hold: vectors and ids, and BM25 postings."""
        return self.vectors.memory_bytes() + self.lexical.postings * POSTING_BYTES


class EmbeddedRetrieval:
    """FAISS + BM25 in memory, one pair per collection, reloaded whenever the database's version moves."""

    def __init__(self, settings: Settings, store: Storage, dimension: Callable[[], int], lock: threading.RLock) -> None:
        self.settings = settings
        self.store = store
        self._dimension = dimension  # the embedder's, asked only when a collection has none yet
        self._lock = lock
        # Least recently used first; kept under the memory budget by _keep, always under self._lock.
        self._loaded: OrderedDict[str, _Loaded] = OrderedDict()
        self._sizes: dict[str, int] = {}  # each one's footprint when it was kept: the indexes change in place
        # Ranking by words runs here, on another core, while the asking thread embeds the question: started there,
        # it would be the question that waits for a thread to wake, twice (0.2 ms here, a tenth of an int8 embedding).
        self._beside = ThreadPoolExecutor(max_workers=4, thread_name_prefix="bm25")
        prepare_directory(settings.index_dir)

    def _vector_index(self, collection: str) -> VectorIndex:
        info = self.store.collection(collection)
        dimension = info.dimension or self._dimension()
        return VectorIndex(self.settings.index_dir, collection, dimension, self.settings.ann_threshold)

    def load(self, collection: str) -> _Loaded:
        """Return the collection's indexes, reloading them if the database changed since they were built.

        The FAISS file is trusted only if it was saved for the database's current version and holds exactly
        its chunk ids; otherwise it is rebuilt from the vectors in SQLite, so a crash between the two writes
        can never leave a vector pointing at the wrong text.
        """
        with self._lock:
            info = self.store.collection(collection)
            loaded = self._loaded.get(collection)
            if loaded and loaded.version == info.version:
                self._loaded.move_to_end(collection)
                return loaded
            vectors = self._vector_index(collection)
            chunk_ids, texts = self.store.chunk_texts(collection)
            # A valid file needs only the ids to be trusted; the vectors are read only to rebuild it.
            if not vectors.load(info.version, np.asarray(chunk_ids, dtype=np.int64)):
                ids, matrix = self.store.chunk_vectors(collection)
                vectors.reset(ids, matrix)
                vectors.save(info.version)
            loaded = _Loaded(info.version, vectors, LexicalIndex.from_texts(chunk_ids, texts))
            self._keep(collection, loaded)
            return loaded

    def _keep(self, collection: str, loaded: _Loaded) -> None:
        """Hold a collection's indexes as the most recently used; drop the least recently used past the budget.

        The collection being used is never dropped, even alone over the budget. A dropped collection's indexes
        stay valid for whoever still holds them (a search under way) and are reloaded from disk when next asked.
        """
        with self._lock:
            self._forget(collection)
            self._loaded[collection] = loaded
            self._sizes[collection] = loaded.footprint()
            budget = self.settings.memory_budget_mb * 1024 * 1024
            while self.loaded_bytes > budget and len(self._loaded) > 1:
                evicted = next(iter(self._loaded))
                self._forget(evicted)
                log.debug("Dropped the indexes of collection %r from memory (over the memory budget)", evicted)

    def _forget(self, collection: str) -> None:
        with self._lock:
            self._loaded.pop(collection, None)
            self._sizes.pop(collection, None)

    @property
    def loaded_bytes(self) -> int:
        """The estimated memory of the collections' indexes held now."""
        return sum(self._sizes.values())

    def loaded_collections(self) -> list[str]:
        """The collections whose indexes are in memory, least recently used first."""
        with self._lock:
            return list(self._loaded)

    def before_write(self, collection: str) -> object:
        return self.load(collection)

    def after_write(
        self,
        collection: str,
        before: object,
        *,
        added: tuple[list[int], np.ndarray] | None = None,
        added_texts: list[str] | None = None,
        removed: list[int] | None = None,
    ) -> None:
        """Apply one write to the in-memory indexes and save FAISS; fall back to a full reload if we fell behind."""
        assert isinstance(before, _Loaded)
        loaded = before
        version = self.store.collection(collection).version
        if version != loaded.version + 1:
            self._forget(collection)
            self.load(collection)
            return
        if added:
            loaded.vectors.add(*added)
        if removed:
            loaded.vectors.remove(removed)
        loaded.vectors.save(version)
        lexical = loaded.lexical.changed(added[0] if added else (), added_texts or (), removed or ())
        self._keep(collection, _Loaded(version, loaded.vectors, lexical))

    def reset(self, collection: str) -> None:
        """Forget a collection's indexes and their files (after a rebuild), and load them anew."""
        with self._lock:
            self._forget(collection)
            self._vector_index(collection).delete_files()
            self.load(collection)

    def index_bytes(self, collection: str) -> int:
        return self._vector_index(collection).file_bytes() if self.store.collection(collection).dimension else 0

    def search(
        self,
        collection: str,
        query: Callable[[], np.ndarray],
        query_tokens: list[str],
        scope: tuple[int, ...] | None,
        read: Callable[[list[int]], Passages] | None = None,
    ) -> Retrieved:
        """Rank chunks by words (and ``read`` the best) on another thread while ``query()`` computes the vector on
        this one, then by meaning; with a scope, only the chunks of those articles."""
        loaded = self.load(collection)
        if scope is not None:
            # BM25 scores every chunk anyway: asking for all of them and keeping the scope's costs a sort.
            words = self._beside.submit(self._lexical, loaded.lexical, query_tokens, loaded.lexical.documents)
            dense, allowed = scoped_dense(self.store, collection, query(), scope)
            lexical = [hit for hit in words.result()[0] if hit[0] in allowed][:LEXICAL_CANDIDATES]
            return Retrieved(dense, lexical, loaded.lexical.idf)
        words = self._beside.submit(self._lexical, loaded.lexical, query_tokens, LEXICAL_CANDIDATES, read)
        vector = query()
        # A write since the load changes the vectors in place, under the lock, or leaves these as they were: either
        # way the search is sound, and a chunk gone since is never quoted (the passages are read afresh).
        with self._lock, one_thread():
            dense = loaded.vectors.search(vector, DENSE_CANDIDATES)
        lexical, early = words.result()
        return Retrieved(dense, lexical, loaded.lexical.idf, early)

    def close(self) -> None:
        self._beside.shutdown(wait=False)

    def _lexical(
        self,
        lexical: LexicalIndex,
        query_tokens: list[str],
        depth: int,
        read: Callable[[list[int]], Passages] | None = None,
    ) -> tuple[list[tuple[int, float]], Passages | None]:
        with self._lock:  # a write changes the index in place
            found = lexical.search(query_tokens, depth)
        return found, read([chunk_id for chunk_id, _ in found]) if read else None


@contextmanager
def one_thread() -> Iterator[None]:
    """Run FAISS on this thread alone: one query is too little work for a team of OpenMP threads, whose start and
    barrier cost more than the search itself when the cores are busy (22 ms instead of 1 ms over 10k vectors)."""
    before = faiss.omp_get_max_threads()  # the calling thread's own setting (libgomp keeps one per thread)
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def scoped_dense(
    store: Storage, collection: str, query: np.ndarray, scope: Sequence[int]
) -> tuple[list[tuple[int, float]], set[int]]:
    """A few articles' chunks: exact scores from their stored vectors, no index needed; and their chunk ids."""
    ids, matrix = store.article_chunk_vectors(collection, scope)
    scores = matrix @ query if len(ids) else np.zeros(0, dtype=np.float32)
    order = np.argsort(-scores, kind="stable")[:DENSE_CANDIDATES]
    return [(int(ids[i]), float(scores[i])) for i in order], set(ids.tolist())


def fuse(rankings: list[list[tuple[int, float]]]) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion of several rankings of chunk ids."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, (chunk_id, _) in enumerate(ranking):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank + 1)
    return sorted(scores.items(), key=lambda item: item[1], reverse=True)
