"""Engine ingest throughput against the model's floor, measured in the same run.

    python -m benchmarks.ingest SQUAD.json [--runs 3] [--backends torch onnx onnx-int8]
                                          [--sentence-vectors separate pooled] [--batch-sizes 16]
                                          [--per-add 1 12] [--encodings] [--cache DIR] [--json]

The floor is a plain ``SentenceTransformer.encode(batch_size=16)`` (torch) of exactly the chunks the engine cuts
from the articles (each ``data[]`` entry of a SQuAD v1.1 file such as XQuAD's ``xquad.en.json``, its paragraphs
joined by blank lines), in the batches that call makes (all chunks sorted by length, 16 at a time). Each
configuration adds every article to a fresh collection (cleaning, splitting, chunk and sentence vectors, SQLite,
FAISS, BM25: the whole ``Engine.add_text``) with its model already loaded, and the floor's batches run between
the articles, spread evenly: both see the same load from whatever else the machine runs. ``--per-add N`` (N > 1)
instead adds N articles at a time with ``Engine.add_all``, as ``python -m index add A B C`` does, the floor's
batches running between those calls. The figure is floor
seconds / engine seconds. Every run repeats every configuration; medians over runs are printed. Text throughput
is in kB of article text (UTF-8) per second.

``--encodings`` also times raw torch encodes of other ways to get chunk and sentence vectors, against the same
floor (no engine around them).
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._collection import load_squad
from index import sources
from index.embedding import Embedder, SentenceTransformerEmbedder, encode_pooled, length_order, load_embedder
from index.models import Chunk, Span
from index.service import Engine
from index.settings import Settings

Plan = tuple[str, list[Chunk], list[Span]]  # an article's cleaned text, its chunks and its sentences


def timed(work: Callable[[], object]) -> float:
    began = time.perf_counter()
    work()
    return time.perf_counter() - began


def paired(items: list[Callable[[], object]], floor_batches: list[Callable[[], object]]) -> tuple[float, float]:
    """Run ``items`` with the floor's batches spread evenly between them; return both totals in seconds."""
    work = floor = 0.0
    done = 0
    for n, item in enumerate(items):
        work += timed(item)
        while done < round((n + 1) * len(floor_batches) / len(items)):
            floor += timed(floor_batches[done])
            done += 1
    return work, floor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ingest", description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="a SQuAD v1.1 JSON file (e.g. xquad.en.json)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backends", nargs="+", default=["torch"], choices=["torch", "onnx", "onnx-int8"])
    parser.add_argument("--sentence-vectors", nargs="+", default=["separate", "pooled"], choices=["separate", "pooled"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[16])
    parser.add_argument(
        "--per-add", nargs="+", type=int, default=[1], help="articles per add: 1 is add_text, more is add_all"
    )
    parser.add_argument("--encodings", action="store_true", help="also time raw encodes of the alternatives")
    parser.add_argument(
        "--cache", type=Path, help="a data directory whose models/ keeps the onnx exports (default: a scratch one)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    articles, _ = load_squad(args.file)
    kilobytes = sum(len(text.encode("utf-8")) for _, text in articles) / 1000
    base = Settings(_env_file=None)  # type: ignore[call-arg]
    with tempfile.TemporaryDirectory() as scratch:
        torch_embedder = SentenceTransformerEmbedder(base.model)
        embedders: dict[str, Embedder] = {"torch": torch_embedder}
        for backend in set(args.backends) - {"torch"}:
            cache = args.cache or Path(scratch)
            embedders[backend] = load_embedder(base.model_copy(update={"backend": backend, "data_dir": cache}))
        plans = _split(articles, base, torch_embedder)
        chunk_texts = [c.text for _, chunks, _ in plans for c in chunks]
        order = length_order(chunk_texts)
        floor_batches = [
            _floor_batch(torch_embedder, [chunk_texts[i] for i in order[first : first + 16]])
            for first in range(0, len(order), 16)
        ]
        for batch in floor_batches:  # first calls pay for allocations and caches
            batch()

        configs = [(b, sv, bs) for b in args.backends for sv in args.sentence_vectors for bs in args.batch_sizes]
        ways = {
            "/".join(map(str, c)) + (f", {n} per add" if n > 1 else ""): _engine_adds(
                articles, _settings(base, c), embedders[c[0]], n
            )
            for c in configs
            for n in args.per_add
        }
        if args.encodings:
            ways |= _encodings(plans, torch_embedder)
        for way in ways.values():  # warm every path once
            items, cleanup = way()
            items[0]()
            cleanup()
        results: dict[str, list[tuple[float, float]]] = {}
        for _ in range(args.runs):
            for name, way in ways.items():
                items, cleanup = way()
                try:
                    results.setdefault(name, []).append(paired(items, floor_batches))
                finally:
                    cleanup()

    chunks = len(chunk_texts)
    figures: dict[str, Any] = {
        "articles": len(articles),
        "chunks": chunks,
        "sentences": sum(len(spans) for _, _, spans in plans),
        "article_kB": round(kilobytes, 1),
        "runs": args.runs,
        "floor_chunks_per_s": round(statistics.median(chunks / f for r in results.values() for _, f in r), 2),
        "ways": {
            name: {
                "chunks_per_s": round(statistics.median(chunks / w for w, _ in runs), 2),
                "kB_per_s": round(statistics.median(kilobytes / w for w, _ in runs), 2),
                "floor_kB_per_s": round(statistics.median(kilobytes / f for _, f in runs), 2),
                "ratio_to_floor": round(statistics.median(f / w for w, f in runs), 3),
                "ratios": [round(f / w, 3) for w, f in runs],
            }
            for name, runs in results.items()
        },
    }
    figures["floor_kB_per_s"] = round(figures["floor_chunks_per_s"] * kilobytes / chunks, 2)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(
        f"{figures['articles']} articles, {chunks} chunks, {figures['sentences']} sentences, "
        f"{figures['article_kB']} kB of text; medians of {args.runs} runs"
    )
    print(
        f"floor (torch encode of the chunks, batch 16): {figures['floor_chunks_per_s']} chunks/s, "
        f"{figures['floor_kB_per_s']} kB/s"
    )
    print(f"{'engine add: backend/sentences/batch':<52}{'chunks/s':>9}{'kB/s':>7}{'x floor':>9}  per run")
    for name, row in figures["ways"].items():
        print(
            f"{name:<52}{row['chunks_per_s']:>9.2f}{row['kB_per_s']:>7.2f}{row['ratio_to_floor']:>9.3f}  "
            + " ".join(f"{r:.3f}" for r in row["ratios"])
        )
    return 0


def _settings(base: Settings, config: tuple[str, str, int]) -> Settings:
    backend, sentence_vectors, batch_size = config
    return base.model_copy(update={"backend": backend, "sentence_vectors": sentence_vectors, "batch_size": batch_size})


def _floor_batch(embedder: SentenceTransformerEmbedder, texts: list[str]) -> Callable[[], object]:
    return lambda: embedder.model.encode(texts, batch_size=16, show_progress_bar=False)


Way = Callable[[], tuple[list[Callable[[], object]], Callable[[], None]]]


def _engine_adds(articles: list[tuple[str, str]], settings: Settings, embedder: Embedder, per_add: int = 1) -> Way:
    """One ``add_text`` per article, or one ``add_all`` per ``per_add`` articles, into a fresh engine (and a way to
    throw it away)."""

    def prepare() -> tuple[list[Callable[[], object]], Callable[[], None]]:
        scratch = tempfile.TemporaryDirectory()
        engine = Engine(settings.model_copy(update={"data_dir": Path(scratch.name)}), embedder)

        def add(title: str, text: str) -> Callable[[], object]:
            return lambda: engine.add_text(text, "bench", title=title)

        def add_all(some: list[tuple[str, str]]) -> Callable[[], object]:
            readers = [functools.partial(sources.from_text, text, settings, title=title) for title, text in some]
            return lambda: list(engine.add_all(readers, "bench"))

        def cleanup() -> None:
            engine.close()
            scratch.cleanup()

        if per_add > 1:
            return [add_all(articles[first : first + per_add]) for first in range(0, len(articles), per_add)], cleanup
        return [add(title, text) for title, text in articles], cleanup

    return prepare


def _split(articles: list[tuple[str, str]], settings: Settings, embedder: Embedder) -> list[Plan]:
    """The engine's own sentences and chunks of every article (cleaned as ``add_text`` cleans it)."""
    with tempfile.TemporaryDirectory() as scratch:
        engine = Engine(settings.model_copy(update={"data_dir": Path(scratch)}), embedder)
        try:
            plans = []
            for title, text in articles:
                cleaned = sources.from_text(text, settings, title=title).text
                plans.append((cleaned, *engine._split(cleaned)))
            return plans
        finally:
            engine.close()


def _encodings(plans: list[Plan], embedder: SentenceTransformerEmbedder) -> dict[str, Way]:
    """Raw torch encodes, one article at a time, of other ways to get its chunk and sentence vectors."""

    def texts(plan: Plan) -> tuple[list[str], list[str]]:
        text, chunks, spans = plan
        return [c.text for c in chunks], [text[s.start : s.end] for s in spans]

    def separate(plan: Plan, chunk_batch: int, sentence_batch: int) -> Callable[[], object]:
        chunks, sentences = texts(plan)
        return lambda: (embedder.encode(chunks, chunk_batch), embedder.encode(sentences, sentence_batch))

    def one_call(plan: Plan, batch: int) -> Callable[[], object]:
        chunks, sentences = texts(plan)
        return lambda: embedder.encode(chunks + sentences, batch)

    def pooled(plan: Plan, batch: int) -> Callable[[], object]:
        return lambda: encode_pooled(embedder, *plan, batch)

    def way(make: Callable[[Plan], Callable[[], object]]) -> Way:
        return lambda: ([make(plan) for plan in plans], lambda: None)

    return {
        "raw: chunks 16, sentences 64 (separate)": way(lambda p: separate(p, 16, 64)),
        "raw: chunks 16, sentences 16": way(lambda p: separate(p, 16, 16)),
        "raw: chunks + sentences in one length-sorted call, 16": way(lambda p: one_call(p, 16)),
        "raw: chunks + sentences in one length-sorted call, 32": way(lambda p: one_call(p, 32)),
        "raw: pooled, 8": way(lambda p: pooled(p, 8)),
        "raw: pooled, 16": way(lambda p: pooled(p, 16)),
        "raw: pooled, 32": way(lambda p: pooled(p, 32)),
    }


if __name__ == "__main__":
    sys.exit(main())
