"""Measure answer quality and speed on a SQuAD v1.1 file.

    python -m index.eval FILE.json [--json] [--data-dir DIR] [--limit N] [--errors MISSES.json]

Each ``data[]`` entry becomes one article (its paragraphs joined by blank lines) in one fresh collection, and
every question is asked against the whole collection. The answer path never sees the gold answers.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from index import sources
from index.errors import NewsQuoteError, UserInputError
from index.lexical import LexicalIndex, tokenize
from index.models import Answer
from index.service import Engine
from index.settings import Settings

COLLECTION = "eval"


def load_squad(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return list(data["data"])


def evaluate(
    engine: Engine,
    articles: list[dict[str, Any]],
    limit: int | None = None,
    with_baselines: bool = False,
    errors: list[dict[str, Any]] | None = None,
) -> dict[str, float]:
    """Index ``articles``, ask every question, score the excerpts; append rank-1 misses to ``errors``.

    A document that cannot be indexed (too short, empty) is counted, and its questions are scored as misses.
    """
    engine.embedder.encode(["warm up"])  # the model loaded before the clock starts: the figure is the adding alone
    started = time.perf_counter()
    ids: list[int] = []
    skipped = 0
    documents = [
        ("\n\n".join(p["context"] for p in entry["paragraphs"]), entry.get("title", "").replace("_", " ") or None)
        for entry in articles
    ]
    readers = [functools.partial(sources.from_text, text, engine.settings, title=title) for text, title in documents]
    for (_, title), outcome in zip(documents, engine.add_all(readers, COLLECTION), strict=True):
        if isinstance(outcome, UserInputError):
            skipped += 1
            ids.append(-1)
            print(f"skipped document {title or len(ids)}: {outcome}", file=sys.stderr)
        else:
            ids.append(outcome.article.id)
    ingest_seconds = time.perf_counter() - started
    chunks = engine.stats(COLLECTION).chunks
    texts = {article_id: engine.article_text(article_id, COLLECTION) for article_id in ids if article_id >= 0}

    questions = [
        (article_id, qa["question"], [a["text"] for a in qa["answers"]])
        for article_id, entry in zip(ids, articles, strict=True)
        for p in entry["paragraphs"]
        for qa in p["qas"]
    ][:limit]
    if not questions or not texts:
        raise SystemExit("error: no question could be asked: no document of the file could be indexed")
    with contextlib.suppress(UserInputError):
        engine.ask(questions[0][1], COLLECTION)  # load the model and the indexes outside the timings
    hit1 = hit3 = article1 = verbatim = shown = 0
    reciprocal: list[float] = []
    lengths: list[int] = []
    latencies: list[float] = []
    for article_id, question, golds in questions:
        began = time.perf_counter()
        try:
            answer = engine.ask(question, COLLECTION, k=10)
        except UserInputError as exc:  # an empty or over-long question in the file: a miss, not a crash
            print(f"question not asked: {question[:80]!r}: {exc}", file=sys.stderr)
            answer = Answer(question, COLLECTION, answered=False)
        latencies.append((time.perf_counter() - began) * 1000)
        golds_folded = [g.casefold() for g in golds]
        hits = [any(g in r.text.casefold() for g in golds_folded) for r in answer.results]
        if errors is not None and not (hits[:1] and hits[0]):
            errors.append(
                {
                    "question": question,
                    "answers": golds,
                    "article_id": article_id,
                    "indexed": article_id >= 0,
                    "excerpts": [
                        {"text": r.text, "article_id": r.article_id, "score": r.score, "hit": h}
                        for r, h in zip(answer.results[:3], hits, strict=False)
                    ],
                }
            )
        hit1 += bool(hits[:1] and hits[0])
        hit3 += any(hits[:3])
        article1 += bool(answer.results) and answer.results[0].article_id == article_id
        reciprocal.append(next((1 / (n + 1) for n, h in enumerate(hits) if h), 0.0))
        for r in answer.results[:3]:
            lengths.append(len(r.text))
            verbatim += texts[r.article_id][r.start : r.end] == r.text
            shown += 1
    n = len(questions)
    latencies.sort()
    extra = baselines(engine, ids, texts, questions) if with_baselines else {}
    return {
        "articles": len(ids) - skipped,
        "documents_not_indexed": skipped,
        "questions": n,
        "excerpt_hit@1": hit1 / n,
        "excerpt_hit@3": hit3 / n,
        "article_hit@1": article1 / n,
        "mrr@10": statistics.fmean(reciprocal),
        "mean_excerpt_chars": statistics.fmean(lengths) if lengths else 0.0,
        "max_excerpt_chars": max(lengths, default=0),
        "verbatim_share": verbatim / shown if shown else 1.0,
        "ingest_chunks_per_s": chunks / ingest_seconds,
        "ask_p50_ms": statistics.median(latencies),
        "ask_p95_ms": latencies[min(n - 1, round(0.95 * (n - 1)))],
    } | extra


def baselines(
    engine: Engine, ids: list[int], texts: dict[int, str], questions: list[tuple[int, str, list[str]]]
) -> dict[str, float]:
    """Score plain single-sentence rankings on the same collection, for comparison: by the model's cosine, by BM25,
    and both fused by reciprocal rank."""
    sentences = [(a, s) for a in ids if a >= 0 for s in engine.store.sentences(a, 0, len(texts[a]))]
    matrix = np.vstack([s.vector for _, s in sentences])
    lexical = LexicalIndex.from_texts(range(len(sentences)), [texts[a][s.start : s.end] for a, s in sentences])
    vectors = engine.embedder.encode([q for _, q, _ in questions])
    hits: dict[str, list[tuple[bool, bool]]] = {"dense": [], "bm25": [], "rrf": []}
    for (_, question, golds), vector in zip(questions, vectors, strict=True):
        dense = [int(i) for i in np.argsort(-(matrix @ vector))[:100]]
        bm25 = [i for i, _ in lexical.search(tokenize(question), 100)]
        fused: dict[int, float] = {}
        for ranking in (dense, bm25):
            for rank, i in enumerate(ranking):
                fused[i] = fused.get(i, 0.0) + 1 / (60 + rank + 1)
        rrf = sorted(fused, key=fused.__getitem__, reverse=True)
        folded = [g.casefold() for g in golds]
        for name, ranking in (("dense", dense), ("bm25", bm25), ("rrf", rrf)):
            found = [
                any(g in texts[sentences[i][0]][sentences[i][1].start : sentences[i][1].end].casefold() for g in folded)
                for i in ranking[:3]
            ]
            hits[name].append((bool(found[:1] and found[0]), any(found)))
    n = len(questions)
    return {
        f"baseline_{name}_{k}": sum(h[pos] for h in rows) / n
        for name, rows in hits.items()
        for pos, k in ((0, "hit@1"), (1, "hit@3"))
    }


def abstention(engine: Engine, articles: list[dict[str, Any]]) -> dict[str, float]:
    """Check the "nothing answers this" threshold: index the first half of the articles only, then ask every
    question; those about the second half have no answer in the collection."""
    half = len(articles) // 2
    for entry in articles[:half]:
        text = "\n\n".join(p["context"] for p in entry["paragraphs"])
        with contextlib.suppress(NewsQuoteError):  # counted by evaluate(); here it just has no answers
            engine.add_text(text, COLLECTION + "-half", title=entry.get("title", "").replace("_", " ") or None)
    answered: dict[bool, list[bool]] = {True: [], False: []}
    for n, entry in enumerate(articles):
        for p in entry["paragraphs"]:
            for qa in p["qas"]:
                try:
                    said = engine.ask(qa["question"], COLLECTION + "-half", k=1).answered
                except UserInputError:
                    said = False
                answered[n < half].append(said)
    return {
        "answerable_reported_unanswered": 1 - statistics.fmean(answered[True]),
        "unanswerable_reported_answered": statistics.fmean(answered[False]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m index.eval", description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="a SQuAD v1.1 JSON file")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument(
        "--data-dir", type=Path, help="keep the evaluation's database here (default: a temporary directory)"
    )
    parser.add_argument(
        "--database-url", metavar="postgresql://...", help="evaluate on this (empty) PostgreSQL database instead"
    )
    parser.add_argument("--limit", type=int, help="ask only the first N questions")
    parser.add_argument(
        "--baselines", action="store_true", help="also score single sentences ranked by cosine, BM25 and their fusion"
    )
    parser.add_argument(
        "--errors",
        type=Path,
        metavar="FILE",
        help="write every question missed at rank 1, with its gold answers "
        "and the first three excerpts, to FILE as JSON",
    )
    parser.add_argument(
        "--abstention",
        action="store_true",
        help="also measure the no-answer threshold: index half the articles, ask about all of them",
    )
    args = parser.parse_args(argv)
    try:
        articles = load_squad(args.file)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: cannot read {args.file} as SQuAD v1.1: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        settings = Settings(data_dir=args.data_dir or Path(scratch))
        if args.database_url:
            settings = settings.model_copy(update={"database_url": args.database_url})
        engine = Engine(settings)
        try:
            errors: list[dict[str, Any]] | None = [] if args.errors else None
            figures = evaluate(engine, articles, args.limit, args.baselines, errors)
            if args.errors:
                args.errors.write_text(json.dumps(errors, indent=2, ensure_ascii=False), encoding="utf-8")
            if args.abstention:
                figures |= abstention(engine, articles)
        finally:
            engine.close()
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        shares = {"excerpt_hit@1", "excerpt_hit@3", "article_hit@1", "verbatim_share"} | {
            key for key in figures if key.startswith(("baseline_", "answerable_", "unanswerable_"))
        }
        for key, value in figures.items():
            shown = (
                f"{value:.1%}"
                if key in shares
                else f"{value:.3f}"
                if key == "mrr@10"
                else f"{value:,.1f}"
                if isinstance(value, float)
                else f"{value:,}"
            )
            print(f"{key:<32}{shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
