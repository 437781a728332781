"""The approximate (HNSW) kind of the vector index: when it is picked, and that it is as trustworthy as the exact one.

The threshold is lowered to a few dozen vectors so that the graphs stay small and the tests fast; recall on real
embeddings at real sizes is measured by ``benchmarks/ann_recall.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import faiss
import numpy as np
import pytest

import index.vectors as vectors_module
from index.service import Engine
from index.settings import Settings
from index.vectors import SHRINK_SHARE, TOMBSTONE_SHARE, Layout, VectorIndex, layout_for
from tests.fakes.embedder import HashEmbedder

DIM = 16
THRESHOLD = 40


def matrix(ids: Iterable[int]) -> np.ndarray:
    """One unit vector per id, the same for the same id."""
    rows = [np.random.default_rng(int(i)).normal(size=DIM).astype(np.float32) for i in ids]
    out = np.vstack(rows) if rows else np.zeros((0, DIM), np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def built(directory: Path, ids: np.ndarray | list[int], threshold: int = THRESHOLD) -> VectorIndex:
    index = VectorIndex(directory, "default", DIM, ann_threshold=threshold)
    index.reset(np.asarray(ids, dtype=np.int64), matrix(ids))
    return index


def reopened(directory: Path, version: int, ids: np.ndarray | list[int]) -> VectorIndex | None:
    index = VectorIndex(directory, "default", DIM, ann_threshold=THRESHOLD)
    return index if index.load(version, np.asarray(ids, dtype=np.int64)) else None


@pytest.mark.parametrize(
    ("count", "kind"), [(0, "flat"), (THRESHOLD - 1, "flat"), (THRESHOLD, "hnsw"), (10 * THRESHOLD, "hnsw")]
)
def test_a_rebuild_picks_exact_search_below_the_threshold_and_hnsw_from_it(
    tmp_path: Path, count: int, kind: str
) -> None:
    index = built(tmp_path, np.arange(1, count + 1))
    assert index.layout.kind == kind
    assert index.approximate == (kind == "hnsw")
    assert index.size == count


def test_an_hnsw_index_finds_what_exact_search_finds(tmp_path: Path) -> None:
    ids = np.arange(1, 2001)
    index = built(tmp_path, ids, threshold=100)
    vectors = matrix(ids)
    queries = matrix(range(10_000, 10_050))
    exact = [set(ids[np.argsort(-(vectors @ q))[:10]].tolist()) for q in queries]
    found = [len({i for i, _ in index.search(q, 10)} & e) for q, e in zip(queries, exact, strict=True)]
    assert sum(found) / (10 * len(queries)) >= 0.95


def test_hnsw_scores_are_the_exact_inner_products(tmp_path: Path) -> None:
    ids = np.arange(1, 201)
    index = built(tmp_path, ids)
    query = matrix([7])[0]
    for chunk_id, score in index.search(query, 10):
        assert score == pytest.approx(float(matrix([chunk_id])[0] @ query), abs=1e-5)


def test_the_layout_is_stored_in_the_sidecar_and_read_back(tmp_path: Path) -> None:
    ids = np.arange(1, 201)
    index = built(tmp_path, ids)
    index.save(1)
    again = reopened(tmp_path, 1, ids)
    assert again is not None
    assert again.layout == index.layout == Layout.from_meta(index.layout.to_meta())
    query = matrix([5_000])[0]
    assert again.search(query, 10) == index.search(query, 10)
    assert again.ids().tolist() == ids.tolist()


def test_adds_and_removes_go_to_the_delta_and_survive_a_reload(tmp_path: Path) -> None:
    ids = np.arange(1, 201)
    index = built(tmp_path, ids)
    index.save(1)
    snapshot = index.path.read_bytes()
    index.add([500, 501], matrix([500, 501]))
    index.remove([3, 4, 5])
    index.save(2)
    assert index.path.read_bytes() == snapshot  # appended, not rewritten
    live = np.array(sorted({*ids.tolist(), 500, 501} - {3, 4, 5}))
    again = reopened(tmp_path, 2, live)
    assert again is not None
    assert again.layout.kind == "hnsw"
    assert again.size == len(live)
    assert again.search(matrix([500])[0], 1)[0][0] == 500
    assert {3, 4, 5}.isdisjoint(i for i, _ in again.search(matrix([4])[0], 50))


def test_removed_ids_are_never_returned_even_when_most_are_removed(tmp_path: Path) -> None:
    ids = np.arange(1, 301)
    index = built(tmp_path, ids)
    gone = ids[ids % 10 != 0].tolist()  # nine in ten
    index.remove(gone)
    assert index.size == 30
    assert index.ids().tolist() == list(range(10, 301, 10))
    for q in range(20):
        found = [i for i, _ in index.search(matrix([q + 1])[0], 50)]
        assert len(found) == len(set(found))
        assert set(found) <= set(range(10, 301, 10))
    assert {i for i, _ in index.search(matrix([1])[0], 30)} == set(range(10, 301, 10))


def test_removed_entries_past_their_share_are_compacted_away_at_the_next_save(tmp_path: Path) -> None:
    ids = np.arange(1, 201)
    index = built(tmp_path, ids)
    index.save(1)
    index.remove(list(range(1, int(TOMBSTONE_SHARE * 200) + 2)))
    index.save(2)
    live = np.arange(int(TOMBSTONE_SHARE * 200) + 2, 201)
    saved = faiss.read_index(str(index.path))
    assert saved.ntotal == len(live)  # a new snapshot without the dead entries
    again = reopened(tmp_path, 2, live)
    assert again is not None
    assert again.layout.kind == "hnsw"
    assert again.memory_bytes() < built(tmp_path / "other", ids).memory_bytes()


def test_a_few_removed_entries_stay_in_the_graph_and_count_in_the_file(tmp_path: Path) -> None:
    ids = np.arange(1, 201)
    index = built(tmp_path, ids)
    index.save(1)
    index.remove([1, 2])
    index.save(2)
    index.save(3)  # no change, no new snapshot either
    again = reopened(tmp_path, 3, ids[2:])
    assert again is not None
    assert again.size == 198
    assert {1, 2}.isdisjoint(again.ids().tolist())


def test_an_index_that_grows_past_the_threshold_becomes_hnsw_at_the_next_save_keeping_every_vector(
    tmp_path: Path,
) -> None:
    index = built(tmp_path, np.arange(1, THRESHOLD))
    index.save(1)
    assert index.layout.kind == "flat"
    index.add([1000, 1001], matrix([1000, 1001]))
    assert index.layout.kind == "flat"  # a write alone does not rebuild
    index.save(2)
    assert index.layout.kind == "hnsw"
    expected = [*range(1, THRESHOLD), 1000, 1001]
    again = reopened(tmp_path, 2, expected)
    assert again is not None
    assert again.layout.kind == "hnsw"
    assert again.ids().tolist() == expected


def test_an_hnsw_index_becomes_exact_again_only_well_below_the_threshold(tmp_path: Path) -> None:
    ids = np.arange(1, THRESHOLD + 1)
    index = built(tmp_path, ids)
    index.save(1)
    index.remove([1, 2])  # just below the threshold: stays approximate (no flapping)
    index.save(2)
    assert index.layout.kind == "hnsw"
    shrink = THRESHOLD - int(SHRINK_SHARE * THRESHOLD) + 1
    index.remove(list(range(3, 3 + shrink)))
    index.save(3)
    assert index.layout.kind == "flat"
    live = ids[2 + shrink :]
    again = reopened(tmp_path, 3, live)
    assert again is not None
    assert again.layout.kind == "flat"
    assert again.ids().tolist() == live.tolist()


def test_a_saved_index_of_the_wrong_kind_for_the_threshold_is_rebuilt(tmp_path: Path) -> None:
    ids = np.arange(1, 101)
    built(tmp_path, ids, threshold=1000).save(1)  # exact, saved with a higher threshold
    assert reopened(tmp_path, 1, ids) is None


def test_byte_flips_across_an_hnsw_snapshot_are_caught(tmp_path: Path) -> None:
    ids = np.arange(1, THRESHOLD + 1)
    index = built(tmp_path, ids)
    index.save(1)
    pristine = index.path.read_bytes()
    for offset in range(0, len(pristine), 31):
        damaged = bytearray(pristine)
        damaged[offset] ^= 0x01
        index.path.write_bytes(bytes(damaged))
        assert reopened(tmp_path, 1, ids) is None, offset
    index.path.write_bytes(pristine)
    assert reopened(tmp_path, 1, ids) is not None


@pytest.mark.parametrize(
    "edit",
    [
        {"kind": "flat"},
        {"kind": "ivf"},
        {"kind": "hnsw", "m": 16, "ef_construction": 40, "ef_search": 65},
        {"kind": "hnsw", "m": "16", "ef_construction": 40, "ef_search": 64},
        {"kind": "hnsw"},
        [],
    ],
)
def test_a_sidecar_whose_layout_differs_from_the_snapshot_is_not_trusted(tmp_path: Path, edit: object) -> None:
    ids = np.arange(1, 101)
    index = built(tmp_path, ids)
    index.save(1)
    meta = json.loads(index.meta_path.read_text())
    assert meta["index"] == {"kind": "hnsw", "m": 16, "ef_construction": 40, "ef_search": 64}
    index.meta_path.write_text(json.dumps({**meta, "index": edit}))
    assert reopened(tmp_path, 1, ids) is None


def crash_on_write(monkeypatch: pytest.MonkeyPatch, n: int) -> Callable[[], None]:
    """Make the ``n``-th file write (1: snapshot, 2: delta, 3: sidecar) fail as a kill would, before its rename."""
    real = vectors_module._atomic_write
    calls = [0]

    def write(path: Path, data: bytes) -> None:
        calls[0] += 1
        if calls[0] == n:
            raise KeyboardInterrupt  # not an OSError: save() does not catch it, as it could not catch a kill
        real(path, data)

    monkeypatch.setattr(vectors_module, "_atomic_write", write)
    return lambda: monkeypatch.setattr(vectors_module, "_atomic_write", real)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_a_crash_between_the_files_of_a_switch_to_hnsw_is_caught_and_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int
) -> None:
    old = np.arange(1, THRESHOLD)
    index = built(tmp_path, old)
    index.save(1)
    index.add([1000, 1001], matrix([1000, 1001]))
    undo = crash_on_write(monkeypatch, n)
    with pytest.raises(KeyboardInterrupt):
        index.save(2)
    undo()
    new = np.array([*old, 1000, 1001])
    assert reopened(tmp_path, 2, new) is None  # the database is at 2: never trusted
    survivor = VectorIndex(tmp_path, "default", DIM, ann_threshold=THRESHOLD)
    assert survivor.load(1, old) == (n == 1)  # a crash before any rename leaves version 1 whole
    survivor.reset(new, matrix(new))  # what the engine does when load says no
    survivor.save(2)
    again = reopened(tmp_path, 2, new)
    assert again is not None
    assert again.layout.kind == "hnsw"


def test_a_crash_in_a_compaction_is_caught_and_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = np.arange(1, 201)
    index = built(tmp_path, ids)
    index.save(1)
    index.remove(list(range(1, 61)))
    undo = crash_on_write(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        index.save(2)
    undo()
    assert reopened(tmp_path, 2, ids[60:]) is None
    assert reopened(tmp_path, 1, ids) is None  # the snapshot is new, the sidecar old: neither version is trusted


def test_the_engine_picks_hnsw_from_the_threshold_setting_and_never_returns_a_removed_chunk(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", ann_threshold=8)  # type: ignore[call-arg]
    engine = Engine(settings, embedder=HashEmbedder())
    try:
        topics = ("ferry", "harbour", "council", "budget", "school", "bridge", "tram", "museum", "river", "market")
        added = [
            engine.add_text(
                f"The {t} report\n\n" + " ".join(f"The {t} plan was reviewed on day {d}." for d in range(60))
            )
            for t in topics
        ]
        vectors = engine.retrieval.load("default").vectors  # type: ignore[attr-defined]
        assert vectors.layout.kind == "hnsw"  # switched by the save of the write that crossed the threshold
        engine.rebuild()
        assert engine.retrieval.load("default").vectors.layout.kind == "hnsw"  # type: ignore[attr-defined]
        before = set(engine.store.chunk_vectors("default")[0].tolist())
        engine.remove(added[0].article.id)
        gone = before - set(engine.store.chunk_vectors("default")[0].tolist())
        assert gone
        answer = engine.ask("What happened to the ferry plan?")
        assert all(r.article_id != added[0].article.id for r in answer.results)
        dense = engine.retrieval.load("default").vectors.search(  # type: ignore[attr-defined]
            HashEmbedder().encode(["ferry plan reviewed"])[0], 30
        )
        assert dense
        assert gone.isdisjoint(i for i, _ in dense)
    finally:
        engine.close()
    again = Engine(settings, embedder=HashEmbedder())
    try:
        vectors = again.retrieval.load("default").vectors  # type: ignore[attr-defined]
        assert vectors.layout.kind == "hnsw"
        assert vectors.ids().tolist() == sorted(again.store.chunk_vectors("default")[0].tolist())
    finally:
        again.close()


def test_layout_for_keeps_an_hnsw_graph_down_to_the_shrink_share() -> None:
    hnsw = layout_for(100, 100)
    assert hnsw.kind == "hnsw"
    assert layout_for(int(SHRINK_SHARE * 100), 100, hnsw).kind == "hnsw"
    assert layout_for(int(SHRINK_SHARE * 100) - 1, 100, hnsw).kind == "flat"
    assert layout_for(99, 100, Layout()).kind == "flat"
