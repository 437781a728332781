"""Warm ask latency at 10k chunks against its floor, "embed the question + exact FAISS search", in the same run.

    python -m benchmarks.ask_latency SQUAD.json [--chunks 10000] [--questions 200] [--runs 3]
                                               [--backend torch|onnx|onnx-int8] [--cache DIR] [--json]

The collection holds the articles of a SQuAD v1.1 file (e.g. XQuAD's ``xquad.en.json``) embedded for real, then
copies of them with jittered vectors (cosine about 0.9 to the originals) up to ``--chunks`` chunks. With the model
and the indexes loaded, each question is asked through ``Engine.ask`` (``k=3``, what the bot quotes) and, right
after, the floor runs on the same question: the model embeds it, and an exact inner-product FAISS index over the
same chunk vectors returns its top 30, on one thread as the engine searches (for one query, a team of threads
only adds its start and its barrier). The figure is the ratio of the two medians, per run; the median of the runs
is printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from benchmarks._collection import build, load_squad, spread
from index.embedding import load_embedder
from index.retrieval import one_thread
from index.service import DENSE_CANDIDATES, Engine
from index.settings import Settings

COLLECTION = "ask-latency"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def floor(flat: faiss.Index, query: np.ndarray) -> None:
    with one_thread():
        flat.search(query, DENSE_CANDIDATES)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ask_latency", description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="a SQuAD v1.1 JSON file (e.g. xquad.en.json)")
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backend", default="torch", choices=["torch", "onnx", "onnx-int8"])
    parser.add_argument("--cache", type=Path, help="keep the collection (and onnx exports) here between runs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    articles, all_questions = load_squad(args.file)
    questions = spread(all_questions, args.questions)
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = args.cache or Path(scratch)
        settings = Settings(_env_file=None, data_dir=data_dir, backend=args.backend, sentence_vectors="pooled")  # type: ignore[call-arg]
        embedder = load_embedder(settings)
        chunks = build(settings, embedder, articles, args.chunks, COLLECTION)
        engine = Engine(settings, embedder)
        try:
            _, matrix = engine.store.chunk_vectors(COLLECTION)
            flat = faiss.IndexFlatIP(matrix.shape[1])
            flat.add(np.ascontiguousarray(matrix, dtype=np.float32))
            for question in questions[:5]:  # load the indexes, warm the caches
                engine.ask(question, COLLECTION)
                floor(flat, embedder.encode([question]))
            runs = []
            for _ in range(args.runs):
                asks: list[float] = []
                floors: list[float] = []
                for question in questions:
                    began = time.perf_counter()
                    engine.ask(question, COLLECTION, k=3)
                    asks.append((time.perf_counter() - began) * 1000)
                    began = time.perf_counter()
                    floor(flat, embedder.encode([question]))
                    floors.append((time.perf_counter() - began) * 1000)
                runs.append(
                    {
                        "ask_p50_ms": statistics.median(asks),
                        "ask_p95_ms": percentile(asks, 0.95),
                        "floor_p50_ms": statistics.median(floors),
                        "ratio_p50": statistics.median(asks) / statistics.median(floors),
                    }
                )
        finally:
            engine.close()

    figures = {
        "backend": args.backend,
        "chunks": chunks,
        "questions": len(questions),
        "runs": args.runs,
        **{key: round(statistics.median(r[key] for r in runs), 3) for key in runs[0]},
        "ratios": [round(r["ratio_p50"], 3) for r in runs],
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(
        f"{args.backend}: {chunks} chunks, {len(questions)} questions, medians of {args.runs} runs\n"
        f"warm ask p50 {figures['ask_p50_ms']:.1f} ms (p95 {figures['ask_p95_ms']:.1f} ms); floor (embed the question "
        f"+ exact FAISS top {DENSE_CANDIDATES}) p50 {figures['floor_p50_ms']:.1f} ms; ask / floor "
        f"{figures['ratio_p50']:.2f} (per run: {' '.join(f'{r:.2f}' for r in figures['ratios'])})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
