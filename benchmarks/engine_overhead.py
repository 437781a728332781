"""The engine's own cost per add and per ask as a collection grows, with a model that costs nothing.

    python benchmarks/engine_overhead.py [--sizes 100 1000 10000] [--rounds 25] [--json]

The model is replaced by a constant-time embedder (a vector drawn from a seed hashed from the text), so what is
timed is the engine itself: cleaning, chunking, SQLite, the vector index and the lexical index. Each size gets
its own data directory, filled straight through the store with synthetic short articles (one chunk each, vectors
stored, no engine call), then an engine is opened on it and loaded once. The timed adds and asks then go round
the sizes in turn, ``--rounds`` times, so that every size sees the same load from whatever else the machine
runs. Medians are printed, with the growth from the smallest size to the largest: of the wall time, and of the
asking thread's CPU time (on a shared machine, wall time also counts the waits for a core, which the CPU time does
not; everything an ask does runs on its thread, FAISS included).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from index.models import ExtractedArticle  # noqa: E402
from index.service import Engine  # noqa: E402
from index.settings import Settings  # noqa: E402
from index.store import NewPiece  # noqa: E402

DIMENSION = 384
SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "da", "fe", "go", "hu", "pa", "ri", "so")


class ConstantEmbedder:
    """Unit vectors seeded by a hash of the text: the same text, the same vector, at no real cost."""

    name = "constant-benchmark"
    dimension = DIMENSION
    max_tokens = 254

    def encode(self, texts: Sequence[str], batch_size: int = 16) -> np.ndarray:
        return np.vstack([_vector(t) for t in texts]) if texts else np.zeros((0, DIMENSION), np.float32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) for t in texts]


def _vector(text: str) -> np.ndarray:
    v = np.random.default_rng(zlib.crc32(text.encode())).standard_normal(DIMENSION).astype(np.float32)
    return v / np.linalg.norm(v)


WORDS = ["".join(random.Random(n).choice(SYLLABLES) for _ in range(3)) for n in range(3000)]


def article(key: int) -> tuple[str, list[tuple[int, int]]]:
    """A short synthetic article (three sentences, well under one chunk) and its sentence spans."""
    rng = random.Random(key)
    sentences = []
    for _ in range(3):
        words = [rng.choice(WORDS) for _ in range(rng.randint(8, 14))]
        sentences.append(" ".join(words).capitalize() + f" {key}.")
    text = " ".join(sentences)
    spans, at = [], 0
    for s in sentences:
        spans.append((at, at + len(s)))
        at += len(s) + 1
    return text, spans


def fill(settings: Settings, embedder: ConstantEmbedder, count: int) -> None:
    engine = Engine(settings, embedder)
    try:
        for key in range(count):
            text, spans = article(key)
            engine.store.add_article(
                "default",
                ExtractedArticle(text, f"Article {key}"),
                canonical_url=None,
                text_hash=f"fill {key}",
                added_by=None,
                chunks=[NewPiece(0, len(text), _vector(text))],
                sentences=[NewPiece(a, b, _vector(text[a:b])) for a, b in spans],
                model=embedder.name,
                dimension=embedder.dimension,
            )
    finally:
        engine.close()


def question(rng: random.Random) -> str:
    return "what about " + " ".join(rng.choice(WORDS) for _ in range(3)) + "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    embedder = ConstantEmbedder()
    with tempfile.TemporaryDirectory(prefix="engine-overhead-") as tmp:
        engines: dict[int, Engine] = {}
        for size in args.sizes:
            settings = Settings(_env_file=None, data_dir=Path(tmp) / str(size))  # type: ignore[call-arg]
            began = time.perf_counter()
            fill(settings, embedder, size)
            engines[size] = Engine(settings, embedder)
            engines[size].ask("warm up", k=3)  # loads the indexes
            print(f"{size} articles ready in {time.perf_counter() - began:.1f} s", file=sys.stderr)
        adds: dict[int, list[float]] = {s: [] for s in args.sizes}
        asks: dict[int, list[float]] = {s: [] for s in args.sizes}
        ask_cpu: dict[int, list[float]] = {s: [] for s in args.sizes}
        rng = random.Random(1)
        for n in range(args.rounds):
            for size in args.sizes:
                text, _ = article(10**7 + n * 100 + size)
                began = time.perf_counter()
                engines[size].add_text(text, title=f"Added {n}")
                adds[size].append(time.perf_counter() - began)
                q = question(rng)
                began, cpu = time.perf_counter(), time.thread_time()
                engines[size].ask(q, k=3)
                asks[size].append(time.perf_counter() - began)
                ask_cpu[size].append(time.thread_time() - cpu)
        for engine in engines.values():
            engine.close()
    result = {
        "sizes": args.sizes,
        "add_ms": {s: statistics.median(adds[s]) * 1000 for s in args.sizes},
        "ask_ms": {s: statistics.median(asks[s]) * 1000 for s in args.sizes},
        "ask_cpu_ms": {s: statistics.median(ask_cpu[s]) * 1000 for s in args.sizes},
    }
    first, last = args.sizes[0], args.sizes[-1]
    result["add_growth"] = result["add_ms"][last] / result["add_ms"][first]
    result["ask_growth"] = result["ask_ms"][last] / result["ask_ms"][first]
    result["ask_cpu_growth"] = result["ask_cpu_ms"][last] / result["ask_cpu_ms"][first]
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{'articles':>9} {'add ms (median)':>16} {'ask ms (median)':>16} {'ask CPU ms (median)':>20}")
    for s in args.sizes:
        print(f"{s:>9} {result['add_ms'][s]:>16.1f} {result['ask_ms'][s]:>16.1f} {result['ask_cpu_ms'][s]:>20.1f}")
    print(
        f"growth {first} -> {last}: add {result['add_growth']:.2f}x, ask {result['ask_growth']:.2f}x "
        f"(CPU {result['ask_cpu_growth']:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
