"""Word-level matching: a stemming tokenizer and a BM25 index over chunks."""

from __future__ import annotations

import math
import re
from array import array
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


REBUILD_AFTER_REMOVALS = 1000  # removed chunks whose postings may linger before they are rebuilt
SPARSE_SHARE = 4  # BM25 scores only the chunks holding a query word when they are under a quarter of all


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
    return [token for token in map(_token, _TOKEN.findall(text)) if token is not None]


@lru_cache(maxsize=65536)
def _token(word: str) -> str | None:
    """A word as found in the text: its token, or None for a stop word (cached: words recur far more than texts)."""
    folded = word.lower().replace("’", "'")
    return None if folded in STOPWORDS else _stem(folded.removesuffix("'s"))


class LexicalIndex:
    """BM25 over a collection's chunks, updated in place, plus the document frequencies that weigh excerpt words.

    Scores are bm25s's (its default: Lucene's idf, k1 = 1.5, b = 0.75, tf / (tf + k1 (1 - b + b |d| / avgdl)),
    an empty chunk counting as one token), but nothing is precomputed per document: an add or a removal touches
    only that chunk's postings, and the average length is read at query time. A removed chunk's postings stay
    until removed chunks outnumber the rest; then the postings are rebuilt from the tokens kept.
    """

    K1 = 1.5
    B = 0.75

    def __init__(self, tokens: dict[int, Sequence[str]]) -> None:
        # Tuples of strings, which the garbage collector stops tracking: a big collection's tokens cost its
        # full collections nothing.
        self._tokens: dict[int, tuple[str, ...]] = {}
        self.frequency: Counter[str] = Counter()
        self.documents = 0
        self._build(tokens)

    def _build(self, tokens: dict[int, Sequence[str]]) -> None:
        self._slot_of: dict[int, int] = {}
        self._slot_ids = array("q")
        self._lengths = array("f")
        self._live = bytearray()
        self._postings: dict[str, tuple[array[int], array[float]]] = {}
        self._total_length = 0
        self._dead = 0
        self._tokens = {}
        self.frequency = Counter()
        self.documents = 0
        self.postings = 0  # (token, slot) entries held, dead slots included: what the index's memory grows with
        for chunk_id, doc in tokens.items():
            self._add(chunk_id, doc)

    @classmethod
    def from_texts(cls, ids: Sequence[int], texts: Sequence[str]) -> LexicalIndex:
        return cls({i: tokenize(t) for i, t in zip(ids, texts, strict=True)})

    @property
    def ids(self) -> np.ndarray:
        """The chunk ids indexed, in the order they were added."""
        return np.fromiter(self._tokens.keys(), dtype=np.int64, count=len(self._tokens))

    def changed(
        self, added_ids: Sequence[int] = (), added_texts: Sequence[str] = (), removed: Sequence[int] = ()
    ) -> LexicalIndex:
        """Add and remove chunks, in place; return the index itself."""
        for chunk_id in removed:
            self._remove(int(chunk_id))
        for chunk_id, text in zip(added_ids, added_texts, strict=True):
            self._remove(int(chunk_id))
            self._add(int(chunk_id), tokenize(text))
        if self._dead > max(REBUILD_AFTER_REMOVALS, self.documents):
            self._build(dict(self._tokens))
        return self

    def _add(self, chunk_id: int, doc: Sequence[str]) -> None:
        slot = len(self._slot_ids)
        self._slot_of[chunk_id] = slot
        self._slot_ids.append(chunk_id)
        length = max(1, len(doc))  # bm25s indexes an empty chunk as one empty token
        self._lengths.append(float(length))
        self._live.append(1)
        self._total_length += length
        self._tokens[chunk_id] = tuple(doc)
        self.documents += 1
        counts = Counter(doc)
        self.frequency.update(counts.keys())
        for token, tf in counts.items():
            posting = self._postings.get(token)
            if posting is None:
                posting = self._postings[token] = (array("i"), array("f"))
            posting[0].append(slot)
            posting[1].append(float(tf))
        self.postings += len(counts)

    def _remove(self, chunk_id: int) -> None:
        slot = self._slot_of.pop(chunk_id, None)
        if slot is None:
            return
        doc = self._tokens.pop(chunk_id)
        self._live[slot] = 0
        self._total_length -= max(1, len(doc))
        self.documents -= 1
        self._dead += 1
        self.frequency.subtract(set(doc))
        for token in set(doc):
            if self.frequency[token] <= 0:
                del self.frequency[token]
                self.postings -= len(self._postings.pop(token)[0])  # only dead slots were left in it

    def idf(self, token: str) -> float:
        """Smoothed inverse document frequency; unseen words weigh the most."""
        df = self.frequency.get(token, 0)
        return math.log(1 + (self.documents - df + 0.5) / (df + 0.5))

    def search(self, query_tokens: Iterable[str], k: int) -> list[tuple[int, float]]:
        known = [t for t in query_tokens if t in self._postings]  # a repeated word counts again, as in bm25s
        if not known or not self.documents or k <= 0:
            return []
        found = [self._postings[token] for token in known]
        lengths = np.frombuffer(self._lengths, dtype=np.float32)
        live = np.frombuffer(self._live, dtype=np.uint8)
        # Only the chunks holding a query word can score. When they are few, the work is over them alone; when
        # they are many, one array over every slot is cheaper than finding them.
        if sum(len(posting[0]) for posting in found) * SPARSE_SHARE < len(lengths):
            slots = np.sort(np.concatenate([np.frombuffer(posting[0], dtype=np.int32) for posting in found]))
            slots = slots[np.concatenate(([True], slots[1:] != slots[:-1]))]
        else:
            slots = np.arange(len(lengths), dtype=np.int32)
        sparse = len(slots) < len(lengths)
        average = np.float32(self._total_length / self.documents)
        scores = np.zeros(len(slots), dtype=np.float32)
        for token, (slots_buffer, tf_buffer) in zip(known, found, strict=True):
            mine = np.frombuffer(slots_buffer, dtype=np.int32)
            tf = np.frombuffer(tf_buffer, dtype=np.float32)
            norm = self.K1 * (1 - self.B + self.B * lengths[mine] / average)
            scores[np.searchsorted(slots, mine) if sparse else mine] += np.float32(self.idf(token)) * tf / (tf + norm)
        scores *= live[slots] if sparse else live
        return [(int(self._slot_ids[slots[i]]), float(scores[i])) for i in _top(scores, k) if scores[i] > 0]


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """The positions of the ``k`` highest scores, highest first; ties in position order, whatever the array's size."""
    if len(scores) > k:
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        keep = np.flatnonzero(scores >= kth)
    else:
        keep = np.arange(len(scores))
    return keep[np.argsort(-scores[keep], kind="stable")][:k]
