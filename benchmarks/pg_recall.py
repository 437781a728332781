"""Recall@10 of a small collection's dense search inside a big PostgreSQL table, against exact search.

    python -m benchmarks.pg_recall [--big 100000] [--small 500] [--queries 100]

A big collection and a small one share the chunks table and its HNSW index; each query searches the small
collection only. Without ``hnsw.iterative_scan`` the index would return the big table's 40 nearest and the
filter would leave almost none of them; with it (relaxed_order) the scan keeps going until 30 pass.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks._pg import database
from index.pg_store import EF_SEARCH, EXACT_DENSE_CHUNKS, PgRetrieval, PgStore

DIMENSION = 384


def fill(store: PgStore, collection: str, count: int, rng: np.random.Generator) -> np.ndarray:
    """Store ``count`` random unit vectors as chunks of one article per 100; return them."""
    vectors = rng.standard_normal((count, DIMENSION)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store._ensure_index(DIMENSION)
    with store.pool.connection() as db, db.transaction():
        db.execute(
            "INSERT INTO collections(name, model, dimension, version, chunks) VALUES (%s, 'synthetic', %s, 1, %s)",
            (collection, DIMENSION, count),
        )
        for first in range(0, count, 100):
            article_id = db.execute(
                "INSERT INTO articles(collection, title, source, added_at, text, text_hash) "
                "VALUES (%s, 't', 'text', '', 'x', %s) RETURNING id",
                (collection, f"{collection}-{first}"),
            ).fetchone()[0]  # type: ignore[index]
            with db.cursor().copy(
                'COPY chunks(article_id, collection, start, "end", embedding, terms) FROM STDIN'
            ) as copy:
                for v in vectors[first : first + 100]:
                    copy.write_row([article_id, collection, 0, 1, v, "x"])
    return vectors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pg_recall", description=__doc__.splitlines()[0])
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=500)
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(7)
    with database() as url:
        store = PgStore(url)
        try:
            began = time.perf_counter()
            big = fill(store, "big", args.big, rng)
            small = fill(store, "small", args.small, rng)
            with store.pool.connection() as db:
                db.execute("ANALYZE chunks")
            loaded = time.perf_counter() - began
            retrieval = PgRetrieval(store)
            ids = np.array([r[0] for r in store._query("SELECT id FROM chunks WHERE collection = 'small' ORDER BY id")])
            # Queries near the small collection's own vectors, as real questions are near their articles.
            queries = small[rng.integers(0, len(small), args.queries)] + 0.5 * rng.standard_normal(
                (args.queries, DIMENSION)
            ).astype(np.float32) / np.sqrt(DIMENSION)
            queries /= np.linalg.norm(queries, axis=1, keepdims=True)
            # What the engine does for a collection this small (an exact search), the HNSW index with the planner
            # free to walk the collection's btree instead, then only HNSW.
            recalls: dict[str, list[float]] = {
                f"exact (the engine's way up to {EXACT_DENSE_CHUNKS} chunks)": [],
                "HNSW, planner's choice": [],
                "HNSW forced": [],
            }
            for way, found in recalls.items():
                if way == "HNSW forced":  # the other way to the small collection: its btree, then an exact sort
                    with store.pool.connection() as db:
                        db.execute("DROP INDEX chunks_by_collection")
                for q in queries:
                    exact = set(ids[np.argsort(-(small @ q))[:10]].tolist())
                    hits = {i for i, _ in retrieval._dense("small", q, exact=way.startswith("exact"))[:10]}
                    found.append(len(exact & hits) / 10)
            # The big collection searched for its own vectors: HNSW with (almost) no filtering.
            big_ids = np.array(
                [r[0] for r in store._query("SELECT id FROM chunks WHERE collection = 'big' ORDER BY id")]
            )
            near = big[rng.integers(0, len(big), args.queries)] + 0.5 * rng.standard_normal(
                (args.queries, DIMENSION)
            ).astype(np.float32) / np.sqrt(DIMENSION)
            near /= np.linalg.norm(near, axis=1, keepdims=True)
            big_recall: dict[int, list[float]] = {100: [], EF_SEARCH: []}
            for ef, found in big_recall.items():
                for q in near:
                    exact = set(big_ids[np.argsort(-(big @ q))[:10]].tolist())
                    found.append(len(exact & {i for i, _ in retrieval._dense("big", q, ef)[:10]}) / 10)
        finally:
            store.close()
    print(
        f"loaded {args.big} + {args.small} random unit vectors in {loaded:.0f} s (ef_search {EF_SEARCH}, relaxed_order)"
    )
    for way, found in recalls.items():
        share = sum(found) / len(found)
        print(
            f"recall@10 of the {args.small}-chunk collection inside {args.big + args.small} chunks, {way}: {share:.3f}"
        )
    for ef, found in big_recall.items():
        print(f"recall@10 of the {args.big}-chunk collection itself at ef_search {ef}: {sum(found) / len(found):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
