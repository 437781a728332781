"""Choosing excerpts: the one to three consecutive sentences inside retrieved chunks that answer best."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from index.lexical import tokenize

MAX_WINDOW = 3


@dataclass(frozen=True, slots=True)
class Weights:
    """How the evidence for an excerpt is combined; fixed for all questions."""

    dense: float = 1.0
    lexical: float = 1.0
    prior: float = 0.3
    extra_sentence: float = 0.08
    max_chars: int = 400


@dataclass(slots=True)
class Sentence:
    id: int
    start: int
    end: int
    dense: float
    tokens: frozenset[str]
    prior: float = 0.0
    vector: np.ndarray | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A scored excerpt: consecutive sentences ``[first, last]`` of one article."""

    article_id: int
    start: int
    end: int
    score: float
    relevance: float
    focus_start: int
    focus_end: int


@dataclass(slots=True)
class ArticleSentences:
    """The sentences of one article that retrieval brought up, in text order."""

    article_id: int
    text: str
    sentences: list[Sentence]


def coverage(weights: dict[str, float], tokens: frozenset[str]) -> float:
    """Share of the question's weight (by idf) that the passage contains."""
    total = sum(weights.values())
    return sum(w for t, w in weights.items() if t in tokens) / total if total else 0.0


def candidates(
    groups: Sequence[ArticleSentences],
    query_tokens: Sequence[str],
    idf: Callable[[str], float],
    weights: Weights = Weights(),
) -> list[Candidate]:
    """Score every window of one to three consecutive sentences; best first."""
    question = {t: idf(t) for t in query_tokens}
    found: list[Candidate] = []
    for group in groups:
        sents = group.sentences
        for i, first in enumerate(sents):
            tokens: frozenset[str] = frozenset()
            for j in range(i, min(i + MAX_WINDOW, len(sents))):
                if j > i and sents[j].id != sents[j - 1].id + 1:
                    break  # not consecutive in the article
                last = sents[j]
                if last.end - first.start > weights.max_chars and j > i:
                    break
                tokens = tokens | last.tokens
                window = sents[i : j + 1]
                best = max(window, key=lambda s: s.dense)
                dense = best.dense
                lexical = coverage(question, tokens)
                prior = max(s.prior for s in window)
                relevance = weights.dense * dense + weights.lexical * lexical
                score = relevance + weights.prior * prior - weights.extra_sentence * (j - i)
                found.append(Candidate(group.article_id, first.start, last.end, score, relevance, best.start, best.end))
    found.sort(key=lambda c: c.score, reverse=True)
    return found


def pick(found: Sequence[Candidate], k: int) -> list[Candidate]:
    """Take the best candidates that do not overlap one another."""
    chosen: list[Candidate] = []
    for cand in found:
        if all(c.article_id != cand.article_id or cand.end <= c.start or cand.start >= c.end for c in chosen):
            chosen.append(cand)
            if len(chosen) == k:
                break
    return chosen


_WORDS = re.compile(r"\S+")


def trim(text: str, start: int, end: int, focus_tokens: Sequence[str], max_chars: int) -> tuple[int, int]:
    """Cut an over-long single sentence to ``max_chars`` around its words that match the question."""
    if end - start <= max_chars:
        return start, end
    words = [m.span() for m in _WORDS.finditer(text, start, end)]
    wanted = set(focus_tokens)
    hits = [n for n, (a, b) in enumerate(words) if wanted & set(tokenize(text[a:b]))]
    centre = hits[len(hits) // 2] if hits else 0
    lo = hi = centre
    while True:
        grown = False
        if hi + 1 < len(words) and words[hi + 1][1] - words[lo][0] <= max_chars:
            hi, grown = hi + 1, True
        if lo > 0 and words[hi][1] - words[lo - 1][0] <= max_chars:
            lo, grown = lo - 1, True
        if not grown:
            break
    return words[lo][0], min(words[hi][1], words[lo][0] + max_chars)
