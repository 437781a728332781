"""A deterministic stand-in for the sentence-transformers model, for tests where its numbers do not matter."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from index.lexical import tokenize

_PIECE = re.compile(r"\w+|[^\w\s]")


class HashEmbedder:
    """Bag of stemmed words hashed into a fixed number of dimensions, L2-normalized.

    Texts sharing content words get a high cosine, unrelated texts a low one: enough for retrieval tests.
    """

    def __init__(self, dimension: int = 64, max_tokens: int = 254, name: str = "hash-test") -> None:
        self.name = name
        self.dimension = dimension
        self.max_tokens = max_tokens
        self.calls = 0

    def encode(self, texts: Sequence[str], batch_size: int = 16) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in tokenize(text) or ["<empty>"]:
                digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
                out[row, int.from_bytes(digest[:4], "little") % self.dimension] += 1.0
            out[row] /= np.linalg.norm(out[row])
        return out

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(_PIECE.findall(t)) for t in texts]
