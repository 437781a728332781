"""Resident memory of one process serving many collections, against the memory budget of their indexes.

    python benchmarks/memory_budget.py [--collections 200] [--chunks 500] [--budget-mb 1024 64] [--json]

Fills ``--collections`` collections of ``--chunks`` chunks each straight through the store (synthetic articles of
ten one-chunk paragraphs, vectors from a constant-time embedder, no engine call), then, for each budget, starts a
fresh process that opens an engine with that ``NEWSQUOTE_MEMORY_BUDGET_MB``, asks every other collection once,
and reads its resident memory (VmRSS in /proc/self/status) before and after the asks; it also reports the
engine's own estimate of the indexes it holds and how many collections it kept in memory.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.engine_overhead import ConstantEmbedder, _vector, article, question  # noqa: E402
from index.models import ExtractedArticle  # noqa: E402
from index.retrieval import EmbeddedRetrieval  # noqa: E402
from index.service import Engine  # noqa: E402
from index.settings import Settings  # noqa: E402
from index.store import NewPiece  # noqa: E402

PARAGRAPHS = 10  # chunks per synthetic article


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def fill(data_dir: Path, collections: int, chunks: int) -> None:
    embedder = ConstantEmbedder()
    engine = Engine(Settings(_env_file=None, data_dir=data_dir), embedder)  # type: ignore[call-arg]
    try:
        key = 0
        for c in range(collections):
            for _ in range(chunks // PARAGRAPHS):
                paragraphs = [article(key * PARAGRAPHS + p)[0] for p in range(PARAGRAPHS)]
                key += 1
                text = "\n\n".join(paragraphs)
                spans, at = [], 0
                for paragraph in paragraphs:
                    spans.append((at, at + len(paragraph)))
                    at += len(paragraph) + 2
                engine.store.add_article(
                    f"server-{c}",
                    ExtractedArticle(text, f"Article {key}"),
                    canonical_url=None,
                    text_hash=f"fill {key}",
                    added_by=None,
                    chunks=[NewPiece(a, b, _vector(text[a:b])) for a, b in spans],
                    sentences=[NewPiece(a, b, _vector(text[a:b])) for a, b in spans],
                    model=embedder.name,
                    dimension=embedder.dimension,
                )
    finally:
        engine.close()


def serve(data_dir: Path, collections: int) -> dict[str, float | int]:
    """Open an engine as a bot process would, ask every other collection once, and measure (runs in a child)."""
    engine = Engine(Settings(data_dir=data_dir), ConstantEmbedder())  # budget from NEWSQUOTE_MEMORY_BUDGET_MB
    before = rss_mb()
    rng = random.Random(0)
    began = time.perf_counter()
    asked = list(range(0, collections, 2))
    for c in asked:
        engine.ask(question(rng), f"server-{c}", k=3)
    elapsed = time.perf_counter() - began
    retrieval = engine.retrieval
    assert isinstance(retrieval, EmbeddedRetrieval)
    result: dict[str, float | int] = {
        "budget_mb": engine.settings.memory_budget_mb,
        "asked": len(asked),
        "held": len(retrieval.loaded_collections()),
        "estimate_mb": retrieval.loaded_bytes / 2**20,
        "rss_before_mb": before,
        "rss_mb": rss_mb(),
        "ask_ms_mean": elapsed / len(asked) * 1000,
    }
    engine.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collections", type=int, default=200)
    parser.add_argument("--chunks", type=int, default=500)
    parser.add_argument("--budget-mb", type=float, nargs="+", default=[1024.0, 64.0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # the child's side
    args = parser.parse_args(argv)
    if args.serve:
        print(json.dumps(serve(args.serve, args.collections)))
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="memory-budget-") as tmp:
        data_dir = Path(tmp) / "data"
        began = time.perf_counter()
        fill(data_dir, args.collections, args.chunks)
        print(
            f"{args.collections} collections of {args.chunks} chunks filled in {time.perf_counter() - began:.0f} s",
            file=sys.stderr,
        )
        for budget in args.budget_mb:
            env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSQUOTE_")}
            env["NEWSQUOTE_MEMORY_BUDGET_MB"] = str(budget)
            child = subprocess.run(
                [sys.executable, __file__, "--serve", str(data_dir), "--collections", str(args.collections)],
                env=env,
                cwd=tmp,
                capture_output=True,
                text=True,
                check=True,
            )
            results.append(json.loads(child.stdout.strip().splitlines()[-1]))
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{args.collections} collections x {args.chunks} chunks, every other one asked once")
    print(
        f"{'budget MB':>10} {'asked':>6} {'held':>5} {'index est. MB':>14} {'RSS before MB':>14} {'RSS after MB':>13}"
        f" {'growth MB':>10} {'ask ms':>7}"
    )
    for r in results:
        print(
            f"{r['budget_mb']:>10g} {r['asked']:>6} {r['held']:>5} {r['estimate_mb']:>14.1f}"
            f" {r['rss_before_mb']:>14.1f} {r['rss_mb']:>13.1f} {r['rss_mb'] - r['rss_before_mb']:>10.1f}"
            f" {r['ask_ms_mean']:>7.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
