"""FAISS indexes of chunk vectors, one per collection, derived from SQLite and saved atomically."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

import faiss
import numpy as np


def _atomic_write(path: Path, data: bytes) -> None:
    """Write a file so that a crash leaves either the old or the new content, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class VectorIndex:
    """Inner-product search over normalized chunk vectors; FAISS ids are SQLite chunk ids."""

    def __init__(self, directory: Path, collection: str, dimension: int) -> None:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", collection)[:40]
        digest = hashlib.sha1(collection.encode()).hexdigest()[:8]
        self.path = directory / f"{safe}-{digest}.faiss"
        self.meta_path = self.path.with_suffix(".json")
        self.dimension = dimension
        self.version = -1
        self._index: faiss.Index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> np.ndarray:
        return np.sort(faiss.vector_to_array(self._index.id_map).astype(np.int64))  # type: ignore[attr-defined]

    def load(self, expected_version: int, expected_ids: np.ndarray) -> bool:
        """Load the saved index if it matches the database exactly; return False when it must be rebuilt."""
        try:
            meta = json.loads(self.meta_path.read_text())
            index = faiss.read_index(str(self.path))
        except (OSError, ValueError, RuntimeError):
            return False
        if meta.get("version") != expected_version or index.d != self.dimension:
            return False
        self._index = index
        if not np.array_equal(self.ids(), np.sort(expected_ids)):
            self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dimension))
            return False
        self.version = expected_version
        return True

    def reset(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dimension))
        self.add(ids, vectors)

    def add(self, ids: np.ndarray | list[int], vectors: np.ndarray) -> None:
        if len(ids):
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))

    def remove(self, ids: list[int]) -> None:
        if ids:
            self._index.remove_ids(np.asarray(ids, dtype=np.int64))  # type: ignore[arg-type]

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        if self.size == 0 or k <= 0:
            return []
        scores, ids = self._index.search(
            np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32), min(k, self.size)
        )
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def save(self, version: int) -> None:
        """Persist the index, then the version it reflects: a crash in between is caught by ``load``."""
        _atomic_write(self.path, faiss.serialize_index(self._index).tobytes())
        _atomic_write(self.meta_path, json.dumps({"version": version, "count": self.size}).encode())
        self.version = version

    def delete_files(self) -> None:
        self.path.unlink(missing_ok=True)
        self.meta_path.unlink(missing_ok=True)

    def file_bytes(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0
