"""The lexical index: updated in place, scoring exactly as bm25s does when rebuilt from scratch."""

from __future__ import annotations

import random

import bm25s
import numpy as np
import pytest

from index import lexical
from index.lexical import LexicalIndex


def _reference(docs: dict[int, list[str]], query: list[str]) -> dict[int, float]:
    ids = list(docs)
    bm25 = bm25s.BM25()
    bm25.index([docs[i] or [""] for i in ids], show_progress=False)
    known = [t for t in query if t in bm25.vocab_dict]
    scores = bm25.get_scores(known) if known else np.zeros(len(ids))
    return {ids[n]: float(scores[n]) for n in range(len(ids)) if scores[n] > 0}


@pytest.mark.parametrize("removed", [0, 50, 290])  # 290 of 300 removed: the postings are rebuilt
def test_scores_after_adds_and_removals_are_bm25s_scores_of_a_fresh_index(
    removed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lexical, "REBUILD_AFTER_REMOVALS", 100)
    rng = random.Random(removed)
    vocab = [f"w{i}" for i in range(200)]
    docs = {n * 3 + 1: [rng.choice(vocab) for _ in range(rng.randint(0, 30))] for n in range(300)}
    index = LexicalIndex({})
    for chunk_id, doc in docs.items():
        index.changed([chunk_id], [" ".join(doc)])
    gone = list(docs)[:removed]
    index.changed(removed=gone)
    later = {5000 + n: [rng.choice(vocab) for _ in range(10)] for n in range(20)}
    index.changed(list(later), [" ".join(d) for d in later.values()])
    live = {i: d for i, d in docs.items() if i not in set(gone)} | later
    assert index.documents == len(live)
    for _ in range(30):
        query = [rng.choice(vocab) for _ in range(3)]
        mine = dict(index.search(query, 10_000))
        theirs = _reference(live, query)
        assert mine.keys() == theirs.keys()
        assert all(mine[i] == pytest.approx(theirs[i], rel=1e-4) for i in mine)
