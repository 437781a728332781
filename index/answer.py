"""Choosing excerpts: the one to three consecutive sentences inside retrieved chunks that answer best."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from index.lexical import tokenize

MAX_WINDOW = 3


@dataclass(frozen=True, slots=True)
class Weights:
    """How the evidence for an excerpt is combined; fixed for all questions."""

    dense: float = 1.0
    lexical: float = 1.0
    prior: float = 0.3
    extra_sentence: float = 0.08
    # A window that starts mid-story ("she said", "he added") leaves the reader asking who.
    dangling_start: float = 0.15
    # A headline or subheading is a label, not an answer.
    heading: float = 0.2
    # The question asks who / when / how many, and the window names no one / no date / no number.
    missing_answer_type: float = 0.1
    max_chars: int = 400


@dataclass(frozen=True, slots=True)
class Traits:
    """What a sentence offers a reader, judged from its surface."""

    dangling: bool  # leans on an earlier sentence for who is speaking or acting
    heading: bool
    names: bool  # mentions a proper name after its first word
    number: bool
    date: bool


_PERSON_PRONOUN = re.compile(r"\b(he|she|they|him|her|his|them|their)\b", re.I)
_WORD_AFTER = re.compile(r"(\S?)(\s*)\b([A-Z][a-z]+)")
_OPENERS = frozenset(".!?:;“\"‘'(—–-")
_NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|hundred|"
    r"thousand|million|billion|dozen|half)\b",
    re.I,
)
_DATE = re.compile(
    r"\b(1[0-9]{3}|20[0-9]{2}|January|February|March|April|May|June|July|August|September|October|November|"
    r"December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|"
    r"Sunday|today|yesterday|tomorrow|century|decade|week|month|year|spring|summer|autumn|winter|morning|"
    r"evening|night)\b|\d",
    re.I,
)
_CLOSED = re.compile(r"[.!?…\"”’')\]]$")


def traits(sentence: str, line_start: bool, line_end: bool) -> Traits:
    """Judge a sentence; ``line_start``/``line_end`` say whether it begins/ends its line of text."""
    names = has_name(sentence)
    return Traits(
        dangling=bool(_PERSON_PRONOUN.search(sentence)) and not names,
        heading=line_start and line_end and not _CLOSED.search(sentence) and len(sentence) < 150,
        names=names,
        number=bool(_NUMBER.search(sentence)),
        date=bool(_DATE.search(sentence)),
    )


def has_name(sentence: str) -> bool:
    """Whether a capitalized word stands where only a name would be capitalized (not after a full stop or quote)."""
    for match in _WORD_AFTER.finditer(sentence):
        before = sentence[: match.start(3)].rstrip()
        if before and before[-1] not in _OPENERS:
            return True
    return False


_NO_TRAITS = Traits(dangling=False, heading=False, names=True, number=True, date=True)


def expected_trait(question: str) -> str | None:
    """Which trait an answer to this question must have, judged by its question word."""
    q = question.lower()
    if re.search(r"\bhow (many|much|long|old|far|big|large|tall|high)\b|\bwhat (percentage|number|proportion)\b", q):
        return "number"
    if re.search(r"\b(when|what (year|date|day|month|time|century|decade))\b", q):
        return "date"
    if re.match(r"\s*(who|whom|whose)\b", q) or re.search(r"\b(by whom|which (person|people|official|company))\b", q):
        return "names"
    return None


@dataclass(slots=True)
class Sentence:
    id: int
    start: int
    end: int
    dense: float
    tokens: frozenset[str]
    prior: float = 0.0
    traits: Traits = _NO_TRAITS


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
    wanted: str | None = None,
) -> list[Candidate]:
    """Score every window of one to three consecutive sentences; best first.

    ``wanted`` is the trait the answer must show (see ``expected_trait``).
    """
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
                penalty = weights.extra_sentence * (j - i)
                penalty += weights.dangling_start * first.traits.dangling
                penalty += weights.heading * any(s.traits.heading for s in window)
                if wanted and not any(getattr(s.traits, wanted) for s in window):
                    penalty += weights.missing_answer_type
                score = relevance + weights.prior * prior - penalty
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
