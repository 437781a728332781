"""Answers as they were shown, the votes on them, and the votes turned into an evaluation file.

An answer record keeps what a follow-up, a "More" and a vote need to know: the question, the collection, the
articles it was limited to, and the passages it quoted (article id and offsets, never a copy of the text).
The upvoted answers make a SQuAD v1.1 file (the article as context, the quoted sentence as the answer), so
``python -m index.eval`` can score a change against answers a server confirmed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from index.models import Answer, Article

FEEDBACK_DAYS = 30  # the window /stats and `stats` count votes over


@dataclass(frozen=True, slots=True)
class Quote:
    """One quoted passage of an answer, as offsets into its article's stored text."""

    article_id: int
    start: int
    end: int
    focus_start: int  # the sentence shown in bold: the answer proper
    focus_end: int
    weak: bool = False  # shown as a weak match


@dataclass(frozen=True, slots=True)
class AnswerRecord:
    id: int
    collection: str
    question: str
    answered: bool
    scope: tuple[int, ...] | None  # the articles the question was limited to; None for the whole collection
    quotes: tuple[Quote, ...]
    parent_id: int | None  # the answer this one continues ("More")
    asked_by: str | None
    asked_at: str

    @property
    def article_ids(self) -> list[int]:
        """The articles that answered, in the order they were first quoted (all quoted ones if none answered)."""
        strong = [q for q in self.quotes if not q.weak] or self.quotes
        return list(dict.fromkeys(q.article_id for q in strong))


@dataclass(frozen=True, slots=True)
class Votes:
    up: int = 0
    down: int = 0

    @property
    def total(self) -> int:
        return self.up + self.down

    @property
    def share_up(self) -> float | None:
        """The share of 👍 among the votes, or None when nobody voted."""
        return self.up / self.total if self.total else None


def quotes_of(answer: Answer) -> list[Quote]:
    return [Quote(e.article_id, e.start, e.end, e.focus_start, e.focus_end, e.weak) for e in answer.results]


def overlaps(a: Quote, b: Quote) -> bool:
    return a.article_id == b.article_id and a.start < b.end and b.start < a.end


def unseen(answer: Answer, seen: Sequence[Quote]) -> list[int]:
    """Indexes of the answer's excerpts that overlap none of the passages already shown."""
    return [n for n, q in enumerate(quotes_of(answer)) if not any(overlaps(q, s) for s in seen)]


def squad(
    voted: Iterable[tuple[AnswerRecord, Votes]], article: Callable[[str, int], tuple[Article, str] | None]
) -> dict[str, Any]:
    """Write answers as SQuAD v1.1: one document per article, one question per answer.

    The answer span is the first excerpt's bold sentence, at its offset in the article's text; answers whose
    article is gone (``article`` returns None) are left out, and the same question with the same span is
    written once.
    """
    documents: dict[int, dict[str, Any]] = {}
    written: set[tuple[str, int, int]] = set()
    for record, votes in voted:
        if not record.quotes:
            continue
        quote = record.quotes[0]
        found = article(record.collection, quote.article_id)
        if found is None:
            continue
        meta, text = found
        start, end = quote.focus_start, quote.focus_end
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        key = (record.question.casefold(), quote.article_id, start)
        if start >= end or end > len(text) or key in written:
            continue
        written.add(key)
        document = documents.setdefault(
            quote.article_id, {"title": meta.title, "paragraphs": [{"context": text, "qas": []}]}
        )
        document["paragraphs"][0]["qas"].append(
            {
                "id": f"answer-{record.id}",
                "question": record.question,
                "answers": [{"text": text[start:end], "answer_start": start}],
                "collection": record.collection,
                "votes": {"up": votes.up, "down": votes.down},
            }
        )
    return {"version": "1.1", "data": list(documents.values())}
