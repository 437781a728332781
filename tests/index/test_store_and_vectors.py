"""SQLite as the source of truth and the FAISS index derived from it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from index.errors import ArticleNotFoundError
from index.models import ExtractedArticle
from index.store import NewPiece, Store
from index.vectors import VectorIndex

DIM = 8


def unit(seed: int, dim: int = DIM) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


# --- the vector index ----------------------------------------------------------------------------


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    return tmp_path / "faiss"


def filled(index_dir: Path, ids: list[int], collection: str = "default") -> VectorIndex:
    index = VectorIndex(index_dir, collection, DIM)
    index.reset(np.array(ids, dtype=np.int64), np.vstack([unit(i) for i in ids]))
    return index


def test_search_returns_the_id_of_the_nearest_vector(index_dir: Path) -> None:
    index = filled(index_dir, [11, 22, 33])
    assert index.search(unit(22), 1)[0][0] == 22


def test_search_scores_are_cosine_similarities(index_dir: Path) -> None:
    index = filled(index_dir, [11, 22, 33])
    hits = dict(index.search(unit(22), 3))
    assert hits[22] == pytest.approx(1.0, abs=1e-5)
    assert hits[11] == pytest.approx(float(unit(11) @ unit(22)), abs=1e-5)


def test_search_of_an_empty_index_finds_nothing(index_dir: Path) -> None:
    assert VectorIndex(index_dir, "default", DIM).search(unit(1), 5) == []


def test_removed_ids_are_never_returned(index_dir: Path) -> None:
    index = filled(index_dir, [11, 22, 33])
    index.remove([22])
    assert index.size == 2
    assert 22 not in dict(index.search(unit(22), 10))


def test_a_saved_index_loads_back_for_the_same_version_and_ids(index_dir: Path) -> None:
    filled(index_dir, [11, 22, 33]).save(version=4)
    again = VectorIndex(index_dir, "default", DIM)
    assert again.load(4, np.array([33, 11, 22]))
    assert again.search(unit(33), 1)[0][0] == 33


def test_a_saved_index_of_another_version_is_not_trusted(index_dir: Path) -> None:
    filled(index_dir, [11, 22, 33]).save(version=4)
    assert not VectorIndex(index_dir, "default", DIM).load(5, np.array([11, 22, 33]))


def test_a_saved_index_with_other_ids_is_not_trusted_and_not_half_loaded(index_dir: Path) -> None:
    filled(index_dir, [11, 22, 33]).save(version=4)
    again = VectorIndex(index_dir, "default", DIM)
    assert not again.load(4, np.array([11, 22, 44]))
    assert again.size == 0


def test_a_saved_index_of_another_dimension_is_not_trusted(index_dir: Path) -> None:
    filled(index_dir, [11, 22]).save(version=1)
    assert not VectorIndex(index_dir, "default", DIM * 2).load(1, np.array([11, 22]))


@pytest.mark.parametrize("damage", ["missing", "garbage", "empty", "bad-meta"])
def test_a_damaged_index_file_is_not_trusted(index_dir: Path, damage: str) -> None:
    index = filled(index_dir, [11, 22])
    index.save(version=1)
    if damage == "missing":
        index.path.unlink()
    elif damage == "garbage":
        index.path.write_bytes(b"not a faiss index at all" * 10)
    elif damage == "empty":
        index.path.write_bytes(b"")
    else:
        index.meta_path.write_text("{not json")
    assert not VectorIndex(index_dir, "default", DIM).load(1, np.array([11, 22]))


def test_saving_leaves_no_temporary_files(index_dir: Path) -> None:
    index = filled(index_dir, [11, 22])
    for version in range(1, 4):
        index.save(version)
    assert sorted(p.name for p in index_dir.iterdir()) == sorted(
        [index.path.name, index.meta_path.name, index.delta_path.name]
    )


@pytest.mark.parametrize("collection", ["../../outside", "guild/123", "a b:c*?", "ünïcode", "x" * 300])
def test_any_collection_name_gets_a_file_inside_the_index_directory(index_dir: Path, collection: str) -> None:
    index = filled(index_dir, [1], collection)
    index.save(1)
    assert index.path.parent == index_dir
    assert index.path.exists()


def test_collections_whose_names_look_alike_get_different_files(index_dir: Path) -> None:
    assert VectorIndex(index_dir, "guild/1", DIM).path != VectorIndex(index_dir, "guild_1", DIM).path


# --- the store -----------------------------------------------------------------------------------

TEXT = "The bridge reopened on Monday. Traffic was light. Engineers praised the repair."


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "db" / "test.db")
    yield opened
    opened.close()


def add(store: Store, text: str = TEXT, collection: str = "default", url: str | None = None, digest: str = "h1"):
    sentences = [NewPiece(0, 30, unit(1)), NewPiece(31, 49, unit(2)), NewPiece(50, len(text), unit(3))]
    return store.add_article(
        collection,
        ExtractedArticle(text=text, title="Bridge reopens", url=url),
        canonical_url=url,
        text_hash=digest,
        added_by="tester",
        chunks=[NewPiece(0, 49, unit(4)), NewPiece(31, len(text), unit(5))],
        sentences=sentences,
        model="hash-test",
        dimension=DIM,
    )


def test_a_stored_article_keeps_its_exact_text(store: Store) -> None:
    article, _ = add(store)
    assert store.article_text(article.id) == TEXT
    assert article.chars == len(TEXT)
    assert article.chunks == 2


def test_stored_chunks_slice_back_to_the_article_text(store: Store) -> None:
    _article, chunk_ids = add(store)
    ids, texts = store.chunk_texts("default")
    assert ids == chunk_ids
    assert texts == [TEXT[0:49], TEXT[31 : len(TEXT)]]


def test_chunk_vectors_come_back_as_stored(store: Store) -> None:
    _, chunk_ids = add(store)
    ids, matrix = store.chunk_vectors("default")
    assert list(ids) == chunk_ids
    np.testing.assert_array_equal(matrix, np.vstack([unit(4), unit(5)]))


def test_every_write_bumps_the_collection_version(store: Store) -> None:
    assert store.collection("default").version == 0
    article, _ = add(store)
    after_add = store.collection("default").version
    store.remove_article("default", article.id)
    assert 0 < after_add < store.collection("default").version


def test_removing_an_article_removes_its_chunks_and_sentences(store: Store) -> None:
    article, chunk_ids = add(store)
    _, removed = store.remove_article("default", article.id)
    assert removed == chunk_ids
    assert store.counts("default") == (0, 0, 0)
    assert store.chunks("default", chunk_ids) == {}


def test_an_article_is_found_again_by_its_url_or_its_text(store: Store) -> None:
    article, _ = add(store, url="https://news.example/bridge", digest="abc")
    assert store.find_duplicate("default", "https://news.example/bridge", "other") == (article, "url")
    assert store.find_duplicate("default", None, "abc") == (article, "text")
    assert store.find_duplicate("default", "https://news.example/other", "other") is None


def test_duplicates_are_looked_for_only_in_the_same_collection(store: Store) -> None:
    add(store, url="https://news.example/bridge", digest="abc")
    assert store.find_duplicate("elsewhere", "https://news.example/bridge", "abc") is None


def test_an_article_of_another_collection_is_not_found(store: Store) -> None:
    article, _ = add(store, collection="guild-a")
    with pytest.raises(ArticleNotFoundError, match="no article #"):
        store.article("guild-b", article.id)


def test_chunks_of_another_collection_are_ignored(store: Store) -> None:
    _, chunk_ids = add(store, collection="guild-a")
    assert store.chunks("guild-b", chunk_ids) == {}


def test_sentences_overlapping_a_range_come_back_in_order(store: Store) -> None:
    article, _ = add(store)
    rows = store.sentences(article.id, 31, 49)
    assert [(r.start, r.end) for r in rows] == [(31, 49)]
    assert [(r.start, r.end) for r in store.sentences(article.id, 0, len(TEXT))] == [(0, 30), (31, 49), (50, len(TEXT))]


def test_articles_are_listed_newest_first(store: Store) -> None:
    first, _ = add(store, digest="one")
    second, _ = add(store, text=TEXT + " More.", digest="two")
    assert [a.id for a in store.articles("default")] == [second.id, first.id]


@pytest.mark.parametrize(("needle", "found"), [("100%", 1), ("rates_", 0), ("RATES", 1), ("%", 1), ("_", 0)])
def test_title_search_treats_wildcards_literally(store: Store, needle: str, found: int) -> None:
    store.add_article(
        "default",
        ExtractedArticle(text=TEXT, title="Rates up 100% in a year"),
        canonical_url=None,
        text_hash="t1",
        added_by=None,
        chunks=[NewPiece(0, len(TEXT), unit(1))],
        sentences=[NewPiece(0, len(TEXT), unit(1))],
        model="hash-test",
        dimension=DIM,
    )
    store.add_article(
        "default",
        ExtractedArticle(text=TEXT + "!", title="Bridge reopens"),
        canonical_url=None,
        text_hash="t2",
        added_by=None,
        chunks=[NewPiece(0, len(TEXT), unit(2))],
        sentences=[NewPiece(0, len(TEXT), unit(2))],
        model="hash-test",
        dimension=DIM,
    )
    assert len(store.search_titles("default", needle)) == found


def test_the_database_survives_reopening(tmp_path: Path) -> None:
    first = Store(tmp_path / "test.db")
    article, _ = add(first)
    first.close()
    again = Store(tmp_path / "test.db")
    try:
        assert again.article_text(article.id) == TEXT
        assert again.collection("default").model == "hash-test"
    finally:
        again.close()


# --- the delta: a write appends, it does not rewrite the snapshot ----------------------------------------


def _grown(index_dir: Path, adds: int) -> VectorIndex:
    """An index of 20 vectors saved as a snapshot at version 1, then ``adds`` writes of one vector each."""
    index = filled(index_dir, list(range(1, 21)))
    index.save(1)
    for n in range(adds):
        index.add([100 + n], unit(100 + n)[None, :])
        index.save(2 + n)
    return index


def test_a_write_appends_to_the_delta_and_leaves_the_snapshot_alone(index_dir: Path) -> None:
    index = filled(index_dir, list(range(1, 21)))
    index.save(1)
    snapshot = index.path.read_bytes()
    index.add([100], unit(100)[None, :])
    index.remove([3])
    index.save(2)
    assert index.path.read_bytes() == snapshot
    expected = np.array(sorted({*range(1, 21), 100} - {3}), dtype=np.int64)
    again = VectorIndex(index_dir, "default", DIM)
    assert again.load(2, expected)
    assert again.search(unit(100), 1)[0][0] == 100


def test_the_delta_is_folded_into_a_new_snapshot_when_it_grows(index_dir: Path) -> None:
    index = _grown(index_dir, 30)
    assert index.delta_path.stat().st_size < 0.5 * index.path.stat().st_size + 200
    assert VectorIndex(index_dir, "default", DIM).load(31, np.array([*range(1, 21), *range(100, 130)]))


def test_a_torn_last_record_means_out_of_date_not_wrong(index_dir: Path) -> None:
    index = _grown(index_dir, 2)
    size = index.delta_path.stat().st_size
    os.truncate(index.delta_path, size - 5)
    again = VectorIndex(index_dir, "default", DIM)
    assert not again.load(3, np.array([*range(1, 21), 100, 101]))
    assert VectorIndex(index_dir, "default", DIM).saved()[0] == 2  # the record before the torn one still reads


def test_every_single_byte_flip_in_a_delta_is_caught(index_dir: Path) -> None:
    index = _grown(index_dir, 1)
    pristine = index.delta_path.read_bytes()
    ids = np.array([*range(1, 21), 100])
    for offset in range(len(pristine)):
        damaged = bytearray(pristine)
        damaged[offset] ^= 0x01
        index.delta_path.write_bytes(bytes(damaged))
        assert not VectorIndex(index_dir, "default", DIM).load(2, ids), offset
    index.delta_path.write_bytes(pristine)
    assert VectorIndex(index_dir, "default", DIM).load(2, ids)


def test_a_delta_from_another_snapshot_is_not_read(index_dir: Path) -> None:
    index = _grown(index_dir, 1)
    stale = index.delta_path.read_bytes()
    index.reset(np.array(list(range(1, 21)), dtype=np.int64), np.vstack([unit(i) for i in range(1, 21)]))
    index.save(2)  # a rebuild at version 2: a new snapshot
    index.delta_path.write_bytes(stale)
    assert VectorIndex(index_dir, "default", DIM).load(2, np.arange(1, 21))
