"""Our own incremental BM25 index against bm25s and SQLite FTS5: retrieval quality and the cost of a write.

    python -m benchmarks.lexical_compare FILE.json [--sizes 1000,10000,100000] [--adds 30] [--queries 200]
                                         [--no-dense]

Quality: every article of the SQuAD v1.1 file is added to a fresh collection by the engine (so the chunks are
exactly the engine's), then every question ranks those chunks by words alone. A chunk answers a question when it
belongs to the question's article and contains one of its gold answers (case-folded), the measure
``python -m index.eval`` uses for excerpts; hit@k is the share of questions answered by one of the first k
chunks, MRR the mean of 1/rank of the first answering chunk within 30. With the model (not ``--no-dense``), each
lexical ranking is also fused with the dense one by reciprocal rank, as ``Engine.ask`` does. The same again with
the engine's sentences as units: many more, smaller units, so the rankings differ more.

Speed: N synthetic chunks, each made of real sentences of the file drawn at random up to the length of a real
chunk drawn at random, then chunks added one at a time (one write each) and questions asked, all methods in turn
(interleaved). A write's floor is what the engine pays anyway: one row into a plain SQLite table and a commit, on
the same WAL database with ``synchronous = FULL`` as the store; an FTS5 write is that row and its FTS5 entry in
the same transaction. A query's floor is a fixed computation (sorting 20,000 floats). "build" is the whole index
made from N chunks: for our index (in memory) at every process start and after an eviction, for FTS5 (on disk)
once. Few distinct words recombine into 100k chunks, so posting lists are longer than a real collection's of
that size: query times there are an upper bound, for every method alike.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from index.errors import NewsQuoteError
from index.lexical import STOPWORDS, LexicalIndex, tokenize
from index.retrieval import DENSE_CANDIDATES, LEXICAL_CANDIDATES, fuse
from index.service import Engine
from index.settings import Settings

COLLECTION = "lexical"
OWN = "own BM25 (index/lexical.py)"
BM25S = "bm25s (rebuilt per write)"
DEPTH = LEXICAL_CANDIDATES  # chunks a ranking hands to fusion
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# Questions no SQuAD file holds, made of FTS5 query syntax: each must be asked without an error.
HOSTILE = [
    'NEAR("a" b, 2) AND x:y OR NOT -z',
    'He said "hello" -- "unterminated',
    "content: title:* ^start col:{a b} + (x) AND OR NOT NEAR",
    "'; DROP TABLE chunks; --",
    "?!",
]

Ranker = Callable[[str], list[int]]


# --- the rankers ------------------------------------------------------------------------------------------------


def fts5_query(question: str, stopwords: frozenset[str] = frozenset()) -> str:
    """The question as an OR of its words, each a quoted FTS5 string, so that no word is read as syntax.

    Inside double quotes (doubled to escape), NEAR, AND, OR, NOT, a column name and a colon, ``-``, ``*`` and ``^``
    are plain text; words are the tokenizer's letters and digits, so a quoted word is never empty.
    """
    words = [w for w in _WORD.findall(question) if w.lower() not in stopwords]
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in words)


def unchanged(text: str) -> str:
    return text


class Fts5:
    """An FTS5 table beside a plain table of chunk rows, in one SQLite file set up as the engine's store is.

    ``transform`` turns a chunk or a question into what FTS5 reads; ``stopwords`` are left out of questions.
    """

    def __init__(
        self,
        path: Path,
        tokenizer: str,
        transform: Callable[[str], str] = unchanged,
        stopwords: frozenset[str] = frozenset(),
    ) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = FULL")
        self.db.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, body TEXT)")
        self.db.execute(f"CREATE VIRTUAL TABLE fts USING fts5(body, tokenize = '{tokenizer}')")
        self.transform = transform
        self.stopwords = stopwords
        self.path = path

    def fill(self, ids: Sequence[int], texts: Sequence[str]) -> None:
        self.db.execute("BEGIN")
        self.db.executemany(
            "INSERT INTO fts (rowid, body) VALUES (?, ?)",
            ((i, self.transform(t)) for i, t in zip(ids, texts, strict=True)),
        )
        self.db.execute("COMMIT")

    def add(self, chunk_id: int, text: str, also_fts: bool = True) -> float:
        """One write: the chunk's row, and its FTS5 entry unless ``also_fts`` is false (the floor), committed.

        Return the milliseconds of the FTS5 insert alone (of the row's insert, for the floor).
        """
        self.db.execute("BEGIN")
        began = time.perf_counter()
        self.db.execute("INSERT INTO rows (id, body) VALUES (?, ?)", (chunk_id, text))
        if also_fts:
            began = time.perf_counter()
            self.db.execute("INSERT INTO fts (rowid, body) VALUES (?, ?)", (chunk_id, self.transform(text)))
        spent = (time.perf_counter() - began) * 1000
        self.db.execute("COMMIT")
        return spent

    def search(self, question: str, k: int = DEPTH) -> list[int]:
        query = fts5_query(self.transform(question), self.stopwords)
        if not query:
            return []
        rows = self.db.execute("SELECT rowid FROM fts WHERE fts MATCH ? ORDER BY rank LIMIT ?", (query, k))
        return [int(r[0]) for r in rows]

    def bytes(self) -> int:
        """The FTS5 tables' pages (dbstat), or the whole file where SQLite was built without dbstat."""
        try:
            pages = self.db.execute("SELECT SUM(pgsize) FROM dbstat WHERE name LIKE 'fts%'").fetchone()[0]
        except sqlite3.OperationalError:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return self.path.stat().st_size
        return int(pages or 0)

    def close(self) -> None:
        self.db.close()


def engine_words(text: str) -> str:
    """The engine's tokens, for FTS5 to index as words: its BM25 on our stems and stop words."""
    return " ".join(tokenize(text))


class Bm25s:
    """bm25s on the engine's tokens: rebuilt from every chunk's tokens on each write, as the engine once did."""

    def __init__(self, ids: Sequence[int], tokens: list[list[str]]) -> None:
        self.ids = list(ids)
        self.tokens = tokens
        self._build()

    def _build(self) -> None:
        import bm25s

        self.model = bm25s.BM25()
        self.model.index([t or [""] for t in self.tokens], show_progress=False)

    def add(self, chunk_id: int, text: str) -> None:
        self.ids.append(chunk_id)
        self.tokens.append(tokenize(text))
        self._build()

    def search(self, question: str, k: int = DEPTH) -> list[int]:
        known = [t for t in tokenize(question) if t in self.model.vocab_dict]
        if not known:
            return []
        scores = self.model.get_scores(known)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [self.ids[i] for i in top if scores[i] > 0]


def bm25s_installed() -> bool:
    try:
        import bm25s  # noqa: F401
    except ImportError:
        return False
    return True


# --- quality ----------------------------------------------------------------------------------------------------


def ingest(engine: Engine, articles: list[dict[str, Any]]) -> list[tuple[int, str, list[str]]]:
    """Add each article as ``index.eval`` does; return (article id, question, gold answers) of every question."""
    questions: list[tuple[int, str, list[str]]] = []
    for n, entry in enumerate(articles):
        text = "\n\n".join(p["context"] for p in entry["paragraphs"])
        title = entry.get("title", "").replace("_", " ") or f"article {n}"
        try:
            article_id = engine.add_text(text, COLLECTION, title=title).article.id
        except NewsQuoteError as exc:
            print(f"skipped document {title}: {exc}", file=sys.stderr)
            article_id = -1
        questions.extend(
            (article_id, qa["question"], [a["text"] for a in qa["answers"]])
            for p in entry["paragraphs"]
            for qa in p["qas"]
        )
    return questions


Units = dict[int, tuple[int, str]]  # id -> (article id, text)
Row = tuple[str, dict[str, float], dict[str, float] | None, str, int]


def firsts(rankings: list[list[int]], answering: list[set[int]]) -> list[int | None]:
    """The rank of the first answering unit of each ranking, None if none is in it."""
    return [
        next((r for r, c in enumerate(ranking) if c in good), None)
        for ranking, good in zip(rankings, answering, strict=True)
    ]


def sign_test(gained: int, lost: int) -> float:
    """Two-sided sign test: how likely a split this uneven is if neither ranking is better."""
    n = gained + lost
    if not n:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(gained, lost) + 1)) / 2**n
    return min(1.0, 2 * tail)


def score(found: list[int | None]) -> dict[str, float]:
    n = len(found)
    row = {f"hit@{k}": sum(f is not None and f < k for f in found) / n for k in (1, 5, 30)}
    row["mrr"] = sum(1 / (f + 1) for f in found if f is not None and f < DEPTH) / n
    return row


class LowerK1(LexicalIndex):
    """Our index with FTS5's term-frequency saturation, to tell a better formula from a better tokenizer."""

    K1 = 1.2


def lexical_rankers(units: Units, scratch: Path, with_bm25s: bool) -> tuple[dict[str, Ranker], list[Fts5]]:
    """Every lexical ranking compared, over ``units``; the first is the engine's. Close the tables when done."""
    ids = list(units)
    texts = [text for _, text in units.values()]
    rankers: dict[str, Ranker] = {
        OWN: own_ranker(LexicalIndex.from_texts(ids, texts)),
        "own BM25 with FTS5's k1 = 1.2": own_ranker(LowerK1.from_texts(ids, texts)),
    }
    if with_bm25s:
        rankers["bm25s"] = Bm25s(ids, [tokenize(t) for t in texts]).search
    variants = [
        ("FTS5 unicode61, all words", "unicode61", unchanged, frozenset[str]()),
        ("FTS5 porter unicode61, all words", "porter unicode61", unchanged, frozenset[str]()),
        ("FTS5 porter unicode61, stop words out", "porter unicode61", unchanged, STOPWORDS),
        ("FTS5 unicode61 on engine tokens", "unicode61", engine_words, frozenset[str]()),
    ]
    tables = []
    for n, (name, tokenizer, transform, stopwords) in enumerate(variants):
        table = Fts5(scratch / f"quality-{len(ids)}-{n}.sqlite", tokenizer, transform, stopwords)
        table.fill(ids, texts)
        tables.append(table)
        rankers[name] = table.search
    return rankers, tables


def quality(
    rankers: dict[str, Ranker], questions: list[tuple[int, str, list[str]]], units: Units, dense: list[list[int]] | None
) -> list[Row]:
    """Each ranking's figures alone and fused with the dense one; the questions it answers at rank 1 and the
    engine's ranking (the first) does not, and the other way round; how many questions raised an error."""
    answering = [
        {
            i
            for i, (unit_article, text) in units.items()
            if unit_article == article_id and any(g.casefold() in text.casefold() for g in golds)
        }
        for article_id, _, golds in questions
    ]
    table: list[Row] = []
    if dense is not None:
        table.append(("dense (the model) alone", score(firsts(dense, answering)), None, "", 0))
    reference: list[bool] | None = None
    for name, ranker in rankers.items():
        rankings: list[list[int]] = []
        errors = 0
        for hostile in HOSTILE:
            try:
                ranker(hostile)
            except sqlite3.Error as exc:
                print(f"{name}: {hostile!r} failed: {exc}", file=sys.stderr)
                errors += 1
        for _, question, _ in questions:
            try:
                rankings.append(ranker(question)[:DEPTH])
            except sqlite3.Error as exc:
                print(f"{name}: {question!r} failed: {exc}", file=sys.stderr)
                errors += 1
                rankings.append([])
        fused = None
        if dense is not None:
            fused_rankings = [
                [i for i, _ in fuse([[(i, 0.0) for i in d], [(i, 0.0) for i in lex]])][:DEPTH]
                for d, lex in zip(dense, rankings, strict=True)
            ]
            fused = score(firsts(fused_rankings, answering))
        found = firsts(rankings, answering)
        top = [f == 0 for f in found]
        if reference is None:
            reference, versus = top, ""
        else:
            gained = sum(a and not b for a, b in zip(top, reference, strict=True))
            lost = sum(b and not a for a, b in zip(top, reference, strict=True))
            versus = f"+{gained}/-{lost} p={sign_test(gained, lost):.2f}"
        table.append((name, score(found), fused, versus, errors))
    return table


def print_quality(title: str, rows: list[Row], with_dense: bool) -> None:
    print(title)
    header = f"{'ranking':<40}{'hit@1':>7}{'hit@5':>7}{'hit@30':>7}{'MRR':>7}"
    print(header + (f"{'fused@1':>9}{'fused@5':>9}" if with_dense else "") + f"  {'vs own@1':<18}{'errors':>6}")
    for name, alone, fused, versus, errors in rows:
        line = f"{name:<40}" + "".join(f"{alone[key]:>7.1%}" for key in ("hit@1", "hit@5", "hit@30"))
        line += f"{alone['mrr']:>7.3f}"
        if with_dense:
            line += "".join(f"{'' if fused is None else format(fused[key], '.1%'):>9}" for key in ("hit@1", "hit@5"))
        print(line + f"  {versus:<18}{errors:>6}")
    print()


def dense_rankings(ids: np.ndarray, matrix: np.ndarray, questions: np.ndarray) -> list[list[int]]:
    """The model's ranking, exact (the engine's FAISS index is a flat inner-product index: the same order)."""
    return [[int(ids[j]) for j in np.argsort(-(matrix @ v), kind="stable")[:DENSE_CANDIDATES]] for v in questions]


# --- speed ------------------------------------------------------------------------------------------------------


def synthetic(sentences: list[str], lengths: list[int], count: int, rng: random.Random) -> list[str]:
    """``count`` chunks of random real sentences, each as long as a random real chunk."""
    texts = []
    for _ in range(count):
        target = rng.choice(lengths)
        parts: list[str] = []
        size = 0
        while size < target:
            sentence = rng.choice(sentences)
            parts.append(sentence)
            size += len(sentence) + 1
        texts.append(" ".join(parts))
    return texts


def own_ranker(index: LexicalIndex) -> Ranker:
    def rank(question: str) -> list[int]:
        return [i for i, _ in index.search(tokenize(question), DEPTH)]

    return rank


def floor_query(values: list[float]) -> Ranker:
    """The query floor: a fixed computation, whatever the question."""

    def rank(question: str) -> list[int]:
        sorted(values)
        return []

    return rank


def timed(action: Callable[..., object], *args: Any) -> float:
    began = time.perf_counter()
    action(*args)
    return (time.perf_counter() - began) * 1000


@dataclass(frozen=True, slots=True)
class SpeedRow:
    method: str
    build_ms: float
    write_ms: float  # median
    write_mean_ms: float
    index_ms: float  # median of the index's own part of a write: no commit
    query_ms: float  # median
    size: str


def speed(
    *,
    size: int,
    sentences: list[str],
    lengths: list[int],
    questions: list[str],
    adds: int,
    scratch: Path,
    with_bm25s: bool,
) -> list[SpeedRow]:
    """Build each index of ``size`` chunks, then add chunks one by one and ask questions, the methods in turn
    (in a rotating order); the floor's row first."""
    rng = random.Random(size)
    texts = synthetic(sentences, lengths, size + adds, rng)
    base, extra = texts[:size], texts[size:]
    ids = list(range(size))
    build: dict[str, float] = {"floor": 0.0}

    began = time.perf_counter()
    own = LexicalIndex.from_texts(ids, base)
    build[OWN] = (time.perf_counter() - began) * 1000
    fts: dict[str, Fts5] = {}
    for name, tokenizer, transform, stopwords in (
        ("FTS5 porter unicode61, stop words out", "porter unicode61", unchanged, STOPWORDS),
        ("FTS5 unicode61 on engine tokens", "unicode61", engine_words, frozenset[str]()),
    ):
        table = Fts5(scratch / f"{size}-{len(fts)}.sqlite", tokenizer, transform, stopwords)
        began = time.perf_counter()
        table.fill(ids, base)
        build[name] = (time.perf_counter() - began) * 1000
        fts[name] = table
    bm25: Bm25s | None = None
    if with_bm25s:
        began = time.perf_counter()
        bm25 = Bm25s(ids, [tokenize(t) for t in base])
        build[BM25S] = (time.perf_counter() - began) * 1000
    # bm25s rebuilds everything per write: a few repeats say enough at the large sizes.
    bm25_adds = adds if size <= 10_000 else min(adds, 3)

    floor_table = next(iter(fts.values()))

    def floor_write(chunk_id: int, text: str) -> float:
        return floor_table.add(chunk_id + 10_000_000, text, also_fts=False)

    def own_write(chunk_id: int, text: str) -> None:
        own.changed([chunk_id], [text])

    writes: dict[str, Callable[[int, str], float | None]] = {
        "floor": floor_write,
        OWN: own_write,
        **{name: table.add for name, table in fts.items()},
    }
    if bm25 is not None:
        writes[BM25S] = bm25.add
    totals: dict[str, list[float]] = {name: [] for name in writes}
    parts: dict[str, list[float]] = {name: [] for name in writes}
    names = list(writes)
    for n, text in enumerate(extra):
        for name in names[n % len(names) :] + names[: n % len(names)]:
            if name == BM25S and n >= bm25_adds:
                continue
            began = time.perf_counter()
            part = writes[name](size + n, text)
            totals[name].append((time.perf_counter() - began) * 1000)
            parts[name].append(totals[name][-1] if part is None else part)

    floor_values = [random.Random(0).random() for _ in range(20_000)]
    searches: dict[str, Ranker] = {
        "floor": floor_query(floor_values),
        OWN: own_ranker(own),
        **{name: table.search for name, table in fts.items()},
    }
    if bm25 is not None:
        searches[BM25S] = bm25.search
    query_times: dict[str, list[float]] = {name: [] for name in searches}
    for n, question in enumerate(questions):
        for name in names[n % len(names) :] + names[: n % len(names)]:
            query_times[name].append(timed(searches[name], question))

    held = {OWN: f"{own.postings:,} postings", **{name: f"{t.bytes() / 1e6:.1f} MB on disk" for name, t in fts.items()}}
    for table in fts.values():
        table.close()
    return [
        SpeedRow(
            name,
            build[name],
            statistics.median(totals[name]),
            statistics.fmean(totals[name]),
            statistics.median(parts[name]),
            statistics.median(query_times[name]),
            held.get(name, ""),
        )
        for name in names
    ]


# --- the report -------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lexical_compare", description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="a SQuAD v1.1 JSON file")
    parser.add_argument("--sizes", default="1000,10000,100000", help="index sizes for the speed table (chunks)")
    parser.add_argument("--adds", type=int, default=30, help="chunks added one by one at each size")
    parser.add_argument("--queries", type=int, default=200, help="questions timed at each size")
    parser.add_argument("--no-dense", action="store_true", help="skip the fusion with the model's ranking")
    args = parser.parse_args(argv)
    try:
        articles = list(json.loads(args.file.read_text(encoding="utf-8"))["data"])
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: cannot read {args.file} as SQuAD v1.1: {exc}", file=sys.stderr)
        return 2
    with_bm25s = bm25s_installed()
    if not with_bm25s:
        print("bm25s is not installed (pip install -e '.[test]'): its rows are left out", file=sys.stderr)

    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        engine = Engine(Settings(data_dir=scratch / "engine"))
        try:
            began = time.perf_counter()
            questions = ingest(engine, articles)
            ids, texts = engine.store.chunk_texts(COLLECTION)
            rows = engine.store.chunks(COLLECTION, ids)
            chunks = {i: (rows[i].article_id, t) for i, t in zip(ids, texts, strict=True)}
            article_texts = {a: engine.store.article_text(a) for a in sorted({a for a, _ in chunks.values()})}
            sentence_rows = [
                row for a, text in article_texts.items() for row in engine.store.sentences(a, 0, len(text))
            ]
            sentences = {
                n: (r.article_id, article_texts[r.article_id][r.start : r.end]) for n, r in enumerate(sentence_rows)
            }
            dense_chunks = dense_sentences = None
            if not args.no_dense:
                vectors = engine.embedder.encode([q for _, q, _ in questions])
                dense_chunks = dense_rankings(*engine.store.chunk_vectors(COLLECTION), vectors)
                dense_sentences = dense_rankings(
                    np.arange(len(sentence_rows)), np.vstack([r.vector for r in sentence_rows]), vectors
                )
            print(
                f"{len(articles)} articles, {len(chunks):,} chunks, {len(sentences):,} sentences, "
                f"{len(questions):,} questions (ingested in {time.perf_counter() - began:.0f} s)\n"
            )
        finally:
            engine.close()

        for title, units, dense in (
            (
                f"Quality: the engine's chunks ranked by words alone (first {DEPTH}); a hit is a chunk of the "
                "question's article\nholding a gold answer. fused: with the model's ranking by reciprocal rank, as "
                "in ask. vs own@1: questions\nthis ranking answers at rank 1 and the engine's does not / the other "
                "way round, and a two-sided sign test's p.",
                chunks,
                dense_chunks,
            ),
            (
                "Finer units, harder: the engine's sentences instead of its chunks (as index.eval --baselines).",
                sentences,
                dense_sentences,
            ),
        ):
            rankers, tables = lexical_rankers(units, scratch, with_bm25s)
            print_quality(title, quality(rankers, questions, units, dense), dense is not None)
            for table in tables:
                table.close()

        pool = [text for _, text in sentences.values()]
        lengths = [len(t) for t in texts]
        asked = [q for _, q, _ in questions]
        asked = random.Random(1).sample(asked, min(args.queries, len(asked)))
        stems = len({t for x in pool for t in tokenize(x)})
        print(f"Speed: N chunks recombined from {len(pool):,} real sentences ({stems:,} distinct stems).")
        print(f"write: one chunk added and committed (median of {args.adds}; bm25s: of 3 past 10k), x: to the floor")
        print("(a plain row and its commit); mean: the writes' mean; index: the index's own part of a write, without")
        print(f"the commit. query: the {DEPTH} best of N (median of {len(asked)}), x: to a fixed computation.")
        print("build: all N at once (ours: at every load; FTS5: once, on disk). Ours and bm25s are in memory.")
        print(
            f"{'N':>8}  {'method':<38}{'build s':>8}{'write ms':>10}{'x':>8}{'mean ms':>10}{'index ms':>10}"
            f"{'query ms':>9}{'x':>7}  size"
        )
        for size in (int(s) for s in args.sizes.split(",")):
            rows_at = speed(
                size=size,
                sentences=pool,
                lengths=lengths,
                questions=asked,
                adds=args.adds,
                scratch=scratch,
                with_bm25s=with_bm25s,
            )
            floor = rows_at[0]
            for row in rows_at:
                print(
                    f"{size:>8,}  {row.method:<38}{row.build_ms / 1000:>8.2f}{row.write_ms:>10.2f}"
                    f"{row.write_ms / floor.write_ms:>8.2f}{row.write_mean_ms:>10.2f}{row.index_ms:>10.3f}"
                    f"{row.query_ms:>9.2f}{row.query_ms / floor.query_ms:>7.1f}  {row.size}"
                )
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
