"""FAISS indexes of chunk vectors, one per collection, derived from SQLite and saved atomically.

A saved index is trusted only if its sidecar says it reflects the database's current version, its bytes
match the checksum the sidecar records, and it holds exactly the database's chunk ids. Anything else, from a
stale version to a flipped byte or a folder where the file should be, means "rebuild it from SQLite": the
files here are a cache, never the only copy of anything.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

log = logging.getLogger(__name__)

STALE_TEMP_SECONDS = 3600.0  # a temporary file this old is left over whoever wrote it
_TEMP_PID = re.compile(r"\.(\d+)\.[^.]+\.tmp$")


def _move_aside(path: Path) -> None:
    """Rename something that stands where a file or folder of ours must go, so nothing is deleted."""
    aside = path.with_name(f"{path.name}.moved-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):  # another process moved it first
        path.rename(aside)
        log.warning("%s was in the way of the vector index; moved it to %s", path, aside)


def _ensure_directory(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        _move_aside(directory)
    directory.mkdir(parents=True, exist_ok=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prepare_directory(directory: Path) -> None:
    """Make the index directory usable: a file in its place is moved aside, stale temporary files deleted.

    A temporary file is stale when the process named in it is gone (killed while saving) or it is an hour old.
    """
    _ensure_directory(directory)
    for temp in directory.glob("*.tmp"):
        try:
            match = _TEMP_PID.search(temp.name)
            age = time.time() - temp.stat().st_mtime
            if age > STALE_TEMP_SECONDS or (match and not _alive(int(match.group(1)))):
                temp.unlink()
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            continue


def _atomic_write(path: Path, data: bytes) -> None:
    """Write a file so that a crash leaves either the old or the new content, never a mix."""
    _ensure_directory(path.parent)
    if path.is_dir() and not path.is_symlink():
        _move_aside(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _checksum(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=32).hexdigest()


def _read_meta(path: Path) -> dict[str, Any] | None:
    """The sidecar's fields, or None unless it is an object with every field of the right type."""
    meta = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(meta, dict):
        return None
    for key, kind in (("version", int), ("count", int), ("dimension", int), ("bytes", int), ("blake2b", str)):
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            return None
    return meta


class VectorIndex:
    """Inner-product search over normalized chunk vectors; FAISS ids are SQLite chunk ids."""

    def __init__(self, directory: Path, collection: str, dimension: int) -> None:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", collection)[:40]
        digest = hashlib.sha1(collection.encode()).hexdigest()[:8]
        self.path = directory / f"{safe}-{digest}.faiss"
        self.meta_path = self.path.with_suffix(".json")
        self.dimension = dimension
        self.version = -1
        self._index: faiss.Index = self._empty()

    def _empty(self) -> faiss.Index:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dimension))

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> np.ndarray:
        return np.sort(faiss.vector_to_array(self._index.id_map).astype(np.int64))  # type: ignore[attr-defined]

    def load(self, expected_version: int, expected_ids: np.ndarray) -> bool:
        """Load the saved index if it matches the database exactly; return False when it must be rebuilt."""
        try:
            problem = self._load(expected_version, np.sort(np.asarray(expected_ids, dtype=np.int64)))
        except FileNotFoundError:
            problem = None  # never saved: nothing is wrong, there is just nothing to load
        except Exception as exc:  # any failure to read a derived file means: rebuild it
            problem = f"{type(exc).__name__}: {exc}"
        if problem == "":
            self.version = expected_version
            return True
        if problem:
            log.warning("The vector index %s cannot be used (%s): rebuilding it from the database", self.path, problem)
        self._index = self._empty()
        return False

    def _load(self, expected_version: int, expected_ids: np.ndarray) -> str | None:
        """Load the saved index; return "" if it is trusted, None if it is merely out of date, else what is wrong."""
        meta = _read_meta(self.meta_path)
        if meta is None:
            return "its sidecar file is not what this version writes"
        if meta["version"] != expected_version or meta["count"] != len(expected_ids):
            return None  # saved before the latest write (another process, or a crash between the two)
        if meta["dimension"] != self.dimension:
            return None
        if self.path.stat().st_size != meta["bytes"]:
            return "its size is not the one recorded"
        data = self.path.read_bytes()
        if _checksum(data) != meta["blake2b"]:
            return "its checksum does not match"
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        if not isinstance(index, faiss.IndexIDMap2) or index.d != self.dimension:
            return "it is not an index of this kind"
        self._index = index
        if not np.array_equal(self.ids(), expected_ids):
            return None  # the same version number, reached by another process with other ids
        return ""

    def reset(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._index = self._empty()
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
        """Persist the index, then the sidecar with its version and checksum; a crash in between is caught by ``load``.

        Failing to save is logged, not raised: the database already holds the write, and the next load rebuilds.
        """
        self.version = version
        data = faiss.serialize_index(self._index).tobytes()
        meta = {
            "version": version,
            "count": self.size,
            "dimension": self.dimension,
            "bytes": len(data),
            "blake2b": _checksum(data),
        }
        try:
            _atomic_write(self.path, data)
            _atomic_write(self.meta_path, json.dumps(meta).encode())
        except OSError as exc:
            log.warning("Could not save the vector index %s (%s): it will be rebuilt when next loaded", self.path, exc)

    def delete_files(self) -> None:
        for path in (self.path, self.meta_path):
            if path.is_dir() and not path.is_symlink():
                _move_aside(path)
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                path.unlink()

    def file_bytes(self) -> int:
        try:
            return self.path.stat().st_size if self.path.is_file() else 0
        except OSError:
            return 0
