"""The ask path's shortcuts: rows verified once per process, one read for an answer's passages, BM25 two ways,
passages read while the question is embedded."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import faiss
import numpy as np
import pytest

from index import lexical, service, store
from index.errors import DatabaseDamagedError
from index.lexical import LexicalIndex, tokenize
from index.retrieval import one_thread
from index.service import Engine
from index.settings import Settings
from index.store import Passages
from tests.conftest import drop_database, fresh_database
from tests.fakes.embedder import HashEmbedder
from tests.index.articles import ALL_ARTICLES, BAKERY_STRIKE, LIBRARY_HOURS, PHONE_CALL

QUESTION = "who claimed the call happened?"


@pytest.fixture
def library(tmp_path: Path) -> Iterator[Engine]:
    engine = Engine(Settings(_env_file=None, data_dir=tmp_path / "data"), embedder=HashEmbedder())  # type: ignore[call-arg]
    engine.add_text(PHONE_CALL)
    engine.add_text(BAKERY_STRIKE)
    engine.add_text(LIBRARY_HOURS, "other")
    yield engine
    engine.close()


def test_rows_verified_once_are_not_hashed_again(library: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    first = library.ask(QUESTION)
    hashed: list[str] = []
    digest = store._digest

    def counted(table: str, values: Sequence[object]) -> bytes:
        hashed.append(table)
        return digest(table, values)

    monkeypatch.setattr(store, "_digest", counted)
    again = library.ask(QUESTION)
    assert again.results == first.results
    assert hashed == []


def test_a_row_damaged_after_it_was_verified_is_still_caught(library: Engine) -> None:
    quoted = library.ask(QUESTION).results[0]
    sentence = library.store.sentences(quoted.article_id, quoted.start, quoted.end)[0]
    damaged = bytearray(sentence.vector.tobytes())
    damaged[next(i for i, b in enumerate(damaged) if b)] ^= 0x40
    with sqlite3.connect(library.settings.db_path) as db:  # another connection, as a disk or a person would
        db.execute("UPDATE sentences SET vector = ? WHERE id = ?", (bytes(damaged), sentence.id))
    with pytest.raises(DatabaseDamagedError, match=f"sentence #{sentence.id}'s vector"):
        library.ask(QUESTION)


def test_passages_hold_only_the_collection_s_chunks_and_the_sentences_inside_them(library: Engine) -> None:
    mine, _ = library.store.chunk_texts("default")
    theirs, _ = library.store.chunk_texts("other")
    found = library.store.passages("default", [*theirs, *mine, 10**9])
    assert sorted(found.chunks) == sorted(mine)
    assert {row.article_id for row in found.chunks.values()} == set(found.articles)
    for chunk_id, row in found.chunks.items():
        sentences = found.sentences[chunk_id]
        assert sentences, "every chunk has sentences"
        assert [s.start for s in sentences] == sorted(s.start for s in sentences)
        assert all(s.start < row.end and s.end > row.start and s.article_id == row.article_id for s in sentences)
        alone = library.store.sentences(row.article_id, row.start, row.end)
        assert [(s.id, s.start, s.end, s.vector.tobytes()) for s in sentences] == [
            (s.id, s.start, s.end, s.vector.tobytes()) for s in alone
        ]


TEXTS = [
    "The harbour ferry leaves every twenty minutes.",
    "The harbour ferry leaves every twenty minutes.",  # a tie: the chunk indexed first ranks first
    "Evening crossings end at eleven; the ferry operator said so.",
    "Season tickets keep their price until the end of the year.",
    "Bakery workers walked out over night shifts.",
    "The library opens on Sundays from May.",
    "",
]


@pytest.mark.parametrize("query", ["harbour ferry", "ferry", "season tickets price", "sundays library ferry", "zzz"])
def test_bm25_ranks_the_same_scoring_only_matching_chunks_or_all(monkeypatch: pytest.MonkeyPatch, query: str) -> None:
    index = LexicalIndex.from_texts([10 + n for n in range(len(TEXTS))], TEXTS)
    index.changed(removed=[12])
    rankings = []
    for share in (0, 10**9):  # every query scores only its chunks; every query scores all chunks
        monkeypatch.setattr(lexical, "SPARSE_SHARE", share)
        rankings.append(index.search(tokenize(query), 3))
    assert rankings[0] == rankings[1]
    assert all(chunk_id != 12 for chunk_id, _ in rankings[0])
    if query == "harbour ferry":
        assert [chunk_id for chunk_id, _ in rankings[0][:2]] == [10, 11]


def test_one_thread_gives_the_thread_back_its_setting() -> None:
    before = faiss.omp_get_max_threads()
    with one_thread():
        assert faiss.omp_get_max_threads() == 1
    assert faiss.omp_get_max_threads() == before


class OneCoreEmbedder(HashEmbedder):
    """Says it embeds a text on one core, so the engine reads passages by words while it embeds the question;
    ``during`` runs inside every encode of a question, once the reading thread has been started."""

    cores_per_text = 1

    def __init__(self) -> None:
        super().__init__()
        self.during: Callable[[], None] = lambda: None

    def encode(self, texts: Sequence[str], batch_size: int = 16) -> np.ndarray:
        if len(texts) == 1:
            self.during()
        return super().encode(texts, batch_size)


@pytest.fixture(params=["sqlite", "postgresql"])
def spare_core(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Engine, list[int]]]:
    """An engine that reads early (four cores, a one-core model) on a library of articles, on either backend; and
    the sizes of its early reads."""
    monkeypatch.setattr(service, "usable_cores", lambda: 4)
    url = fresh_database(request.getfixturevalue("postgres_server")) if request.param == "postgresql" else None
    settings = Settings(_env_file=None, data_dir=tmp_path / "early", database_url=url)  # type: ignore[call-arg]
    engine = Engine(settings, embedder=OneCoreEmbedder())
    for text in ALL_ARTICLES:
        engine.add_text(text)
    reads: list[int] = []
    read = engine._read

    def counted(collection: str, embedded: threading.Event, by_words: list[int]) -> Passages:
        found = read(collection, embedded, by_words)
        reads.append(len(found.chunks))
        return found

    monkeypatch.setattr(engine, "_read", counted)
    yield engine, reads
    engine.close()
    if url:
        drop_database(url)


ASKED = [
    QUESTION,
    "how much was the ferry operator fined?",
    "when will libraries open on sundays?",
    "where will the new stadium be built?",
    "why did bakery workers walk out?",
    "what did the port chief say?",
]


def test_reading_while_the_question_is_embedded_quotes_what_reading_afterwards_does(
    spare_core: tuple[Engine, list[int]], tmp_path: Path
) -> None:
    engine, reads = spare_core
    later = Engine(engine.settings, embedder=HashEmbedder())  # the same data; the model takes every core
    try:
        for question in ASKED:
            assert engine.ask(question).results == later.ask(question).results
            first = engine.ask(question).results[0].article_id
            assert engine.ask(question, articles=[first]).results == later.ask(question, articles=[first]).results
            assert engine.ask(question, prefer=[first]).results == later.ask(question, prefer=[first]).results
    finally:
        later.close()
    assert reads, "the early reads happened"
    assert all(reads), "and found chunks"


def test_an_article_removed_while_the_question_is_embedded_is_not_quoted(spare_core: tuple[Engine, list[int]]) -> None:
    engine, reads = spare_core
    quoted = engine.ask(QUESTION).results[0].article_id
    assert engine.article(quoted).title.startswith("Minister and ministry")
    assert isinstance(engine.embedder, OneCoreEmbedder)

    def remove_once_read() -> None:
        deadline = time.monotonic() + 10
        while len(reads) < 2 and time.monotonic() < deadline:  # this question's passages are read by now
            time.sleep(0.001)
        engine.embedder.during = lambda: None
        engine.remove(quoted)

    engine.embedder.during = remove_once_read
    answer = engine.ask(QUESTION)
    assert len(reads) == 2
    assert reads[1] > 0
    assert quoted not in {excerpt.article_id for excerpt in answer.results}


def test_a_damaged_row_read_only_ahead_does_not_fail_the_answer(
    spare_core: tuple[Engine, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, reads = spare_core
    if engine.settings.database_url:
        pytest.skip("checksums are SQLite's; PostgreSQL checks its own pages")
    for n in range(16):  # more chunks with the question's words than an answer reads
        engine.add_text(f"Town {n} notes\n\nThe clerk of town {n} claimed a call about the fair happened late.")
    reads.clear()
    before = engine.ask(QUESTION)
    quoted = {(e.article_id, e.start, e.end) for e in before.results}
    used = engine.store.passages("default", [c for c, _ in _fused(engine, QUESTION)])
    spans = [(row.article_id, row.start, row.end) for row in used.chunks.values()]
    ids, _ = engine.store.chunk_texts("default")
    others = engine.store.chunks("default", [i for i in ids if i not in used.chunks])
    # A sentence of a chunk the answer does not read, outside every chunk it does read.
    victim = next(
        s
        for row in others.values()
        for s in engine.store.sentences(row.article_id, row.start, row.end)
        if not any(a == s.article_id and s.start < end and s.end > start for a, start, end in spans)
    )
    with sqlite3.connect(engine.settings.db_path) as db:
        db.execute("UPDATE sentences SET vector = zeroblob(length(vector)) WHERE id = ?", (victim.id,))
    monkeypatch.setattr(service, "READ_EARLY", 10**6)  # read ahead every chunk BM25 finds, the damaged one too
    engine.store._checked.clear()
    again = engine.ask(QUESTION)
    assert {(e.article_id, e.start, e.end) for e in again.results} == quoted
    assert len(reads) == 2
    assert reads[1] == 0, "the read ahead met the damage and gave up"


def _fused(engine: Engine, question: str) -> list[tuple[int, float]]:
    from index.retrieval import fuse
    from index.service import CHUNKS_TO_READ

    vector = engine.embedder.encode([question])[0]
    ranked = engine.retrieval.search("default", lambda: vector, tokenize(question), None)
    return fuse([ranked.dense, ranked.lexical])[:CHUNKS_TO_READ]
