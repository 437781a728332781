"""Word-level matching: a stemming tokenizer and a BM25 index over chunks."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np

_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)

# Question words and glue carry no topic; dropping them keeps BM25 on the content words.
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "been",
        "being",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "for",
        "from",
        "had",
        "has",
        "have",
        "having",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "may",
        "might",
        "more",
        "most",
        "much",
        "must",
        "no",
        "nor",
        "not",
        "of",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "out",
        "over",
        "own",
        "same",
        "shall",
        "she",
        "he",
        "her",
        "him",
        "his",
        "hers",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "whose",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "any",
        "because",
        "before",
        "below",
        "between",
        "both",
        "during",
        "each",
        "few",
        "further",
        "here",
        "me",
        "my",
        "myself",
        "off",
        "ourselves",
        "theirs",
        "themselves",
        "yourself",
        "s",
        "t",
        "also",
    ]
)


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return str(_stemmer().stemWord(word))


@lru_cache(maxsize=32768)
def token_set(text: str) -> frozenset[str]:
    """The distinct tokens of a sentence; cached, since the same sentences come up question after question."""
    return frozenset(tokenize(text))


def tokenize(text: str) -> list[str]:
    """Lower-case, drop stop words and possessives, stem with Snowball."""
    words = (m.group().lower().replace("’", "'") for m in _TOKEN.finditer(text))
    return [_stem(w.removesuffix("'s")) for w in words if w not in STOPWORDS]


class LexicalIndex:
    """BM25 over a collection's chunks, plus the document frequencies used to weigh words in excerpts.

    Immutable: a change produces a new index that reuses the tokens already computed.
    """

    def __init__(self, tokens: dict[int, list[str]]) -> None:
        import bm25s

        self._tokens = tokens
        self.ids = np.fromiter(tokens.keys(), dtype=np.int64, count=len(tokens))
        self.documents = len(tokens)
        self.frequency: Counter[str] = Counter()
        for doc in tokens.values():
            self.frequency.update(set(doc))
        self._bm25 = bm25s.BM25() if tokens else None
        if self._bm25 is not None:
            self._bm25.index([doc or [""] for doc in tokens.values()], show_progress=False)
            self._vocab = self._bm25.vocab_dict

    @classmethod
    def from_texts(cls, ids: Sequence[int], texts: Sequence[str]) -> LexicalIndex:
        return cls({i: tokenize(t) for i, t in zip(ids, texts, strict=True)})

    def changed(
        self, added_ids: Sequence[int] = (), added_texts: Sequence[str] = (), removed: Sequence[int] = ()
    ) -> LexicalIndex:
        """Return a new index with chunks added and removed."""
        tokens = {i: t for i, t in self._tokens.items() if i not in set(removed)}
        tokens.update({i: tokenize(t) for i, t in zip(added_ids, added_texts, strict=True)})
        return LexicalIndex(tokens)

    def idf(self, token: str) -> float:
        """Smoothed inverse document frequency; unseen words weigh the most."""
        df = self.frequency.get(token, 0)
        return math.log(1 + (self.documents - df + 0.5) / (df + 0.5))

    def search(self, query_tokens: Iterable[str], k: int) -> list[tuple[int, float]]:
        if self._bm25 is None:
            return []
        known = [t for t in query_tokens if t in self._vocab]
        if not known:
            return []
        scores = self._bm25.get_scores(known)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(int(self.ids[i]), float(scores[i])) for i in top if scores[i] > 0]
