"""Recall and speed of the approximate vector index against exact search, on real embeddings of real text.

    python -m benchmarks.ann_recall XQUAD.json --cache /tmp/ann-cache [--sizes 20000 50000 100000] [--sweep 50000]

The vectors are the packaged model's embeddings (``load_embedder(Settings())``) of real text: every sentence of
the XQuAD contexts and every overlapping word window of several sizes (8, 16, 32, 64 and 150 words, the last
about one chunk of ``chunk_tokens`` word-pieces; the smaller ones slide by one word, the larger by a few), shuffled
with a fixed seed so that any prefix is a sample of them all. The queries are the XQuAD questions, embedded for
real. A size larger than the real texts available is filled with jittered copies of real vectors, and its row
says so. The embeddings are cached in ``--cache`` (they take most of the time).

For each size it prints recall@10 of the engine's approximate index (as ``VectorIndex`` picks and tunes it) against
exact inner-product search (``IndexFlatIP``), with and without a share of removed ids, the median search time of
each, interleaved, the build time, and the kind the engine picks at that size.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from index.chunking import split_sentences
from index.embedding import load_embedder
from index.settings import Settings
from index.vectors import VectorIndex

JITTER = 0.025  # Gaussian noise per dimension: a copy of a 384-dimension unit vector at a cosine of about 0.9

WINDOWS = ((8, 1), (16, 1), (32, 2), (64, 4), (150, 8))  # (words, stride): real text, overlapping
PART = 4096  # texts embedded and cached at a time, so that an interrupted run resumes
SEED = 20261126
THREADS = faiss.omp_get_max_threads()  # builds use them all, as in the engine; timed searches one, as in the engine


def corpus(path: Path) -> tuple[list[str], list[str]]:
    """The texts (sentences and word windows of the contexts, shuffled) and the questions of an XQuAD file."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    contexts = [p["context"] for entry in data for p in entry["paragraphs"]]
    questions = [qa["question"] for entry in data for p in entry["paragraphs"] for qa in p["qas"]]
    texts: list[str] = []
    for context in contexts:
        texts.extend(context[s.start : s.end] for s in split_sentences(context))
        words = context.split()
        for size, stride in WINDOWS:
            starts = range(0, max(1, len(words) - size + 1), stride)
            texts.extend(" ".join(words[i : i + size]) for i in starts)
    texts = list(dict.fromkeys(texts))  # a short context gives the same whole-context window at every size
    random.Random(SEED).shuffle(texts)
    return texts, questions


def embeddings(path: Path, cache: Path, limit: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``limit`` texts' vectors and the questions' vectors, embedded once and cached part by part."""
    texts, questions = corpus(path)
    cache.mkdir(parents=True, exist_ok=True)
    embedder = None

    def encode(name: str, items: list[str]) -> np.ndarray:
        nonlocal embedder
        file = cache / f"{name}.npy"
        if file.exists():
            return np.load(file)
        if embedder is None:
            embedder = load_embedder(Settings(_env_file=None))  # type: ignore[call-arg]
        started = time.perf_counter()
        vectors = embedder.encode(items, batch_size=batch_size)
        np.save(cache / f"{name}.tmp.npy", vectors)
        (cache / f"{name}.tmp.npy").replace(file)
        print(f"  embedded {name}: {len(items)} texts in {time.perf_counter() - started:.0f} s", flush=True)
        return vectors

    queries = encode("questions", questions)
    limit = min(limit, len(texts))
    parts = [encode(f"texts-{first:07d}", texts[first : first + PART]) for first in range(0, limit, PART)]
    return np.vstack(parts)[:limit], queries


def padded(real: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` vectors: the real ones, then jittered copies of them (cosine about 0.9 to their original)."""
    if size <= len(real):
        return real[:size]
    copies = real[rng.integers(0, len(real), size - len(real))]
    copies = copies + rng.normal(0.0, JITTER, copies.shape).astype(np.float32)
    copies /= np.linalg.norm(copies, axis=1, keepdims=True)
    return np.vstack([real, copies.astype(np.float32)])


def truth(vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int) -> list[set[int]]:
    """The exact top ``k`` ids of each query (IndexFlatIP)."""
    flat = faiss.IndexIDMap2(faiss.IndexFlatIP(vectors.shape[1]))
    flat.add_with_ids(vectors, ids)
    _, found = flat.search(queries, k)
    return [set(row.tolist()) for row in found]


def recall(found: list[list[int]], expected: list[set[int]]) -> float:
    return sum(len(set(f) & e) for f, e in zip(found, expected, strict=True)) / sum(len(e) for e in expected)


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


@dataclass(frozen=True, slots=True)
class Timing:
    """Median milliseconds of one query, exact and approximate: CPU time of the searching thread, and wall time."""

    exact_cpu: float
    ann_cpu: float
    exact_wall: float
    ann_wall: float

    def columns(self) -> str:
        return (
            f"{self.exact_cpu:9.2f} {self.ann_cpu:7.2f} {self.exact_cpu / self.ann_cpu:7.1f}x "
            f"{self.exact_wall:10.2f} {self.ann_wall:8.2f}"
        )


TIMING_HEADER = f"{'exact ms':>9} {'ann ms':>7} {'ratio':>8} {'exact wall':>10} {'ann wall':>8}"


def timed_pairs(
    exact: Callable[[np.ndarray], object], approximate: Callable[[np.ndarray], object], queries: np.ndarray
) -> Timing:
    """Time both query by query, interleaved, on one thread as the engine searches.

    CPU time of the thread is what the search costs; wall time on a busy machine adds the waits for a core, which
    a search longer than a scheduler slice meets more often.
    """
    samples: dict[str, list[float]] = {"exact_cpu": [], "ann_cpu": [], "exact_wall": [], "ann_wall": []}
    faiss.omp_set_num_threads(1)
    try:
        for query in queries:
            for name, search in (("exact", exact), ("ann", approximate)):
                wall, cpu = time.perf_counter(), time.thread_time()
                search(query)
                samples[f"{name}_cpu"].append(time.thread_time() - cpu)
                samples[f"{name}_wall"].append(time.perf_counter() - wall)
    finally:
        faiss.omp_set_num_threads(THREADS)
    return Timing(**{name: median_ms(values) for name, values in samples.items()})


def flat_search(vectors: np.ndarray) -> Callable[[np.ndarray], object]:
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    return lambda query: flat.search(query.reshape(1, -1), 10)


def sweep(vectors: np.ndarray, queries: np.ndarray, timing: np.ndarray) -> None:
    """Recall@10 and speed of HNSW and IVF parameters over one set of vectors: how the engine's were picked."""
    expected = truth(vectors, np.arange(len(vectors), dtype=np.int64), queries, 10)
    exact = flat_search(vectors)
    print(f"\nSweep over {len(vectors)} real vectors ({len(queries)} queries; ms: median of one query, one thread)")
    print(f"{'index':<28} {'build s':>8} {'recall@10':>10} {TIMING_HEADER}")

    def report(name: str, build: float, index: faiss.Index, params: faiss.SearchParameters) -> None:
        _, found = index.search(queries, 10, params=params)
        got = recall([[int(i) for i in row if i >= 0] for row in found], expected)
        times = timed_pairs(exact, lambda q: index.search(q.reshape(1, -1), 10, params=params), timing)
        print(f"{name:<28} {build:8.1f} {got:10.3f} {times.columns()}", flush=True)

    for m, construction in ((16, 40), (24, 60), (32, 80)):
        began = time.perf_counter()
        hnsw = faiss.IndexHNSWFlat(vectors.shape[1], m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = construction
        hnsw.add(vectors)
        build = time.perf_counter() - began
        for ef in (32, 64, 96, 128, 192):
            params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
            params.efSearch = ef
            report(f"HNSW M={m} efC={construction} efS={ef}", build, hnsw, params)
    lists = int(4 * np.sqrt(len(vectors)))
    began = time.perf_counter()
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(vectors.shape[1]), vectors.shape[1], lists, faiss.METRIC_INNER_PRODUCT)
    ivf.train(vectors)
    ivf.add(vectors)
    build = time.perf_counter() - began
    for probes in (8, 16, 32, 64):
        ivf_params = faiss.SearchParametersIVF()
        ivf_params.nprobe = probes
        report(f"IVF nlist={lists} nprobe={probes}", build, ivf, ivf_params)


def engine_row(vectors: np.ndarray, queries: np.ndarray, timing: np.ndarray, threshold: int, label: str) -> None:
    """One size through ``VectorIndex`` as the engine uses it: build, recall, timing, then with removed ids."""
    size = len(vectors)
    ids = np.arange(1, size + 1, dtype=np.int64)
    with tempfile.TemporaryDirectory(prefix="ann-recall-") as directory:
        index = VectorIndex(Path(directory), "bench", vectors.shape[1], ann_threshold=threshold)
        began = time.perf_counter()
        index.reset(ids, vectors)
        build = time.perf_counter() - began
        began = time.perf_counter()
        index.save(1)
        save = time.perf_counter() - began
        loaded = VectorIndex(Path(directory), "bench", vectors.shape[1], ann_threshold=threshold)
        began = time.perf_counter()
        assert loaded.load(1, ids), "the saved index must load"
        load = time.perf_counter() - began
        exact = flat_search(vectors)
        times = timed_pairs(exact, lambda q: loaded.search(q, 10), timing)
        at10 = recall([[i for i, _ in loaded.search(q, 10)] for q in queries], truth(vectors, ids, queries, 10))
        at30 = recall([[i for i, _ in loaded.search(q, 30)] for q in queries], truth(vectors, ids, queries, 30))
        # A share of the ids removed, below the share that compacts them away: the worst an index serves.
        rng = np.random.default_rng(size)
        gone = rng.choice(ids, int(0.19 * size), replace=False)
        loaded.remove(gone.tolist())
        live = np.setdiff1d(ids, gone)
        found = [[i for i, _ in loaded.search(q, 10)] for q in queries]
        assert not set(gone.tolist()) & {i for row in found for i in row}, "a removed id was returned"
        removed = recall(found, truth(vectors[live - 1], live, queries, 10))
        kind = loaded.layout.kind + (
            f" M={loaded.layout.m} efC={loaded.layout.ef_construction} efS={loaded.layout.ef_search}"
            if loaded.approximate
            else ""
        )
        mb = loaded.memory_bytes() / 2**20
    print(
        f"{size:>7} {label:<10} {kind:<26} {build:7.1f} {save:6.1f} {load:6.1f} {mb:7.0f} {at10:9.3f} {at30:9.3f} "
        f"{removed:9.3f} {times.columns()}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("xquad", type=Path)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "ann-cache")
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 50_000, 70_000, 100_000])
    parser.add_argument("--sweep", type=int, default=0, help="Also compare HNSW and IVF parameters at this size.")
    parser.add_argument("--timing-queries", type=int, default=300, help="Queries timed one by one (of the 1190).")
    parser.add_argument("--embed-only", type=int, default=0, help="Only embed (and cache) this many texts.")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    texts, questions = corpus(args.xquad)
    print(f"{len(texts)} distinct real texts, {len(questions)} questions", flush=True)
    if args.embed_only:
        embeddings(args.xquad, args.cache, args.embed_only, args.batch_size)
        return 0
    real, queries = embeddings(args.xquad, args.cache, max([*args.sizes, args.sweep]), args.batch_size)
    print(f"{len(real)} real vectors embedded (cached in {args.cache})")
    timing = queries[np.random.default_rng(SEED).permutation(len(queries))[: args.timing_queries]]
    if args.sweep:
        sweep(real[: args.sweep], queries, timing)
    threshold = Settings(_env_file=None).ann_threshold  # type: ignore[call-arg]
    print(f"\nThrough VectorIndex, threshold {threshold} (exact below it); ms: median of one query, one thread")
    print(
        f"{'vectors':>7} {'texts':<10} {'kind':<26} {'build s':>7} {'save s':>6} {'load s':>6} {'MB':>7} "
        f"{'recall@10':>9} {'recall@30':>9} {'-19% @10':>9} {TIMING_HEADER}"
    )
    rng = np.random.default_rng(SEED)
    for size in args.sizes:
        vectors = padded(real, size, rng)
        label = "real" if size <= len(real) else f"{len(real) * 100 // size}% real"
        engine_row(vectors, queries, timing, threshold, label)
    return 0


if __name__ == "__main__":
    sys.exit(main())
