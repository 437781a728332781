"""FAISS indexes of chunk vectors, one per collection, derived from SQLite: a snapshot plus an append-only delta.

A write appends one record to the collection's delta file (the vectors added and the ids removed by one database
version, checksummed and tied to the snapshot it follows) instead of rewriting the whole index; when the delta
grows past a share of the snapshot, a new snapshot is written atomically and the delta starts afresh. A saved
index is trusted only if its sidecar's checksum matches the snapshot's bytes, the delta's records follow on from
it version by version up to the database's current version, and the result holds exactly the database's chunk
ids. Anything else, from a stale version or a torn record to a flipped byte or a folder where the file should
be, means "rebuild it from SQLite": the files here are a cache, never the only copy of anything.

Below ``ann_threshold`` vectors the search is exact (``IndexFlatIP``); from it on, it is approximate: an HNSW graph
(``IndexHNSWFlat``, its parameters picked by size and recorded in the sidecar), whose recall@10 against exact
search was measured at 0.95 or more on real embeddings (``benchmarks/ann_recall.py``). The kind changes only when
a whole snapshot is written (a rebuild, or the save after the size crossed the threshold), from the vectors the
index holds. HNSW cannot delete: a removed entry stays in the graph with its id set to ``_DEAD``, is filtered out
of every search by an id selector, and the entries are compacted away when they pass ``TOMBSTONE_SHARE``.
Both kinds sit in an ``IndexIDMap2`` whose ids are the chunk ids, so the load checks are the same for both.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import struct
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

# Spinning OpenMP threads made an HNSW build 4 to 8 times slower on two busy cores (the graph is built in
# parallel); libgomp reads this once, when faiss loads it. index.embedding sets the same, for the same reason.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import faiss
import numpy as np

log = logging.getLogger(__name__)

STALE_TEMP_SECONDS = 3600.0  # a temporary file this old is left over whoever wrote it
_TEMP_PID = re.compile(r"\.(\d+)\.[^.]+\.tmp$")
COMPACT_SHARE = 0.5  # a delta bigger than this share of its snapshot is folded into a new snapshot
_DELTA_MAGIC = b"NQDELTA1"
_RECORD_MAGIC = b"NQREC001"
_RECORD = struct.Struct("<8sqqqq")  # magic, version, vectors added, ids removed, dimension
_DIGEST = 32

DEFAULT_ANN_THRESHOLD = 50_000  # vectors from which a collection's search is approximate
SHRINK_SHARE = 0.8  # an approximate index turns exact again only below this share of the threshold
# HNSW: recall@10 0.994 at 50k real vectors with efSearch 64; M=24 or 32 gained 0.003 for 1.6x the build time.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 40
TOMBSTONE_SHARE = 0.2  # an approximate index with more removed entries than this share is rebuilt at the next save
_ID_BYTES = 8 + 32  # an IndexIDMap2 keeps each id in a vector and in a reverse hash map
_DEAD = -1  # the id of a removed entry still in an HNSW graph; chunk ids are positive
_LIVE = faiss.IDSelectorRange(0, 2**63 - 1)  # every id but _DEAD


@dataclass(frozen=True, slots=True)
class Layout:
    """What kind of FAISS index a collection has, and the parameters of the approximate one."""

    kind: Literal["flat", "hnsw"] = "flat"
    m: int = 0  # graph neighbours per node (2 * m on the bottom layer)
    ef_construction: int = 0  # candidates kept while inserting
    ef_search: int = 0  # candidates kept while searching (at least k)

    def to_meta(self) -> dict[str, Any]:
        if self.kind == "flat":
            return {"kind": "flat"}
        return {"kind": "hnsw", "m": self.m, "ef_construction": self.ef_construction, "ef_search": self.ef_search}

    @classmethod
    def from_meta(cls, meta: object) -> Layout | None:
        """The layout a sidecar records (a sidecar without one is of the exact kind), or None if it is malformed."""
        if meta is None:
            return cls()
        if not isinstance(meta, dict) or meta.get("kind") not in ("flat", "hnsw"):
            return None
        if meta["kind"] == "flat":
            return cls()
        m, construction, search = (meta.get(key) for key in ("m", "ef_construction", "ef_search"))
        for value in (m, construction, search):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= 4096:
                return None
        return cls("hnsw", m, construction, search)  # type: ignore[arg-type]


def ef_search_for(count: int) -> int:
    """Search candidates for an HNSW graph of ``count`` vectors: more for larger graphs, as recall falls with size.

    Recall@10 on real embeddings (benchmarks/ann_recall.py): 0.994 at 50k and 0.987 at 70k with 64, 0.988 at 100k
    with 96, 0.983 at 200k (65% jittered copies) with 128 (0.975 with 96).
    """
    return 64 if count < 100_000 else 96 if count < 200_000 else 128 if count < 500_000 else 192


def layout_for(count: int, threshold: int, current: Layout | None = None) -> Layout:
    """The layout an index of ``count`` vectors should have; an approximate one stays so down to SHRINK_SHARE."""
    approximate = count >= threshold or (
        current is not None and current.kind == "hnsw" and count >= SHRINK_SHARE * threshold
    )
    if not approximate:
        return Layout()
    if current is not None and current.kind == "hnsw":
        return replace(current, ef_search=ef_search_for(count))
    return Layout("hnsw", m=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION, ef_search=ef_search_for(count))


def _layout_of(index: faiss.Index) -> Layout | None:
    """The layout of a deserialized index, as far as the index itself records it (None if it is not ours)."""
    if not isinstance(index, faiss.IndexIDMap2):
        return None
    inner = faiss.downcast_index(index.index)
    if inner.metric_type != faiss.METRIC_INNER_PRODUCT:
        return None
    if isinstance(inner, faiss.IndexFlatIP) or type(inner) is faiss.IndexFlat:
        return Layout()
    if type(inner) is faiss.IndexHNSWFlat:
        hnsw = inner.hnsw
        m = int(hnsw.nb_neighbors(1))  # type: ignore[attr-defined]
        return Layout("hnsw", m, int(hnsw.efConstruction), int(hnsw.efSearch))
    return None


def _new_index(layout: Layout, dimension: int) -> faiss.IndexIDMap2:
    if layout.kind == "flat":
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
    inner = faiss.IndexHNSWFlat(dimension, layout.m, faiss.METRIC_INNER_PRODUCT)
    inner.hnsw.efConstruction = layout.ef_construction
    inner.hnsw.efSearch = layout.ef_search
    return faiss.IndexIDMap2(inner)


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

    def __init__(
        self, directory: Path, collection: str, dimension: int, ann_threshold: int = DEFAULT_ANN_THRESHOLD
    ) -> None:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", collection)[:40]
        digest = hashlib.sha1(collection.encode()).hexdigest()[:8]
        self.path = directory / f"{safe}-{digest}.faiss"
        self.meta_path = self.path.with_suffix(".json")
        self.delta_path = self.path.with_suffix(".delta")
        self.dimension = dimension
        self.ann_threshold = ann_threshold
        self.version = -1
        self.layout = Layout()
        self._index: faiss.IndexIDMap2 = _new_index(self.layout, dimension)
        self._dead = 0  # removed entries still in an HNSW graph
        # What the files on disk hold, so that the next save can append to them instead of rewriting them.
        self._snapshot: str | None = None  # the checksum of the snapshot the delta follows
        self._snapshot_bytes = 0
        self._delta_bytes = 0  # where the next record goes; 0 when the delta cannot be appended to
        # The changes since the files were last written; None after a reset, which needs a whole snapshot.
        self._added: list[tuple[np.ndarray, np.ndarray]] | None = []
        self._removed: list[np.ndarray] = []

    def _use(self, index: faiss.Index, layout: Layout) -> None:
        if not isinstance(index, faiss.IndexIDMap2):
            raise ValueError(f"{self.path} does not hold an index with ids")
        self._index, self.layout = index, layout
        self._dead = int(np.count_nonzero(self._entry_ids() == _DEAD)) if layout.kind == "hnsw" else 0

    @property
    def size(self) -> int:
        """The live vectors (removed entries of an HNSW graph not counted)."""
        return int(self._index.ntotal) - self._dead

    @property
    def approximate(self) -> bool:
        return self.layout.kind != "flat"

    def memory_bytes(self) -> int:
        """An estimate of the memory the index holds: vectors, ids (twice, in IndexIDMap2) and graph links."""
        total = int(self._index.ntotal) * (self.dimension * 4 + _ID_BYTES)
        if self.layout.kind == "hnsw":
            hnsw = faiss.downcast_index(self._index.index).hnsw  # type: ignore[attr-defined]
            total += hnsw.neighbors.size() * 4 + int(self._index.ntotal) * (4 + 8)  # links, levels, offsets
        return total

    def _entry_ids(self) -> np.ndarray:
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def ids(self) -> np.ndarray:
        ids = self._entry_ids()
        return np.sort(ids[ids != _DEAD]) if self._dead else np.sort(ids)

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
            self._added, self._removed = [], []
            return True
        if problem:
            log.warning("The vector index %s cannot be used (%s): rebuilding it from the database", self.path, problem)
        self._use(_new_index(Layout(), self.dimension), Layout())
        self._snapshot, self._delta_bytes = None, 0
        return False

    def _load(self, expected_version: int, expected_ids: np.ndarray) -> str | None:
        """Load the saved index; return "" if it is trusted, None if it is merely out of date, else what is wrong."""
        self._snapshot, self._delta_bytes = None, 0
        meta = _read_meta(self.meta_path)
        if meta is None:
            return "its sidecar file is not what this version writes"
        layout = Layout.from_meta(meta.get("index"))
        if layout is None:
            return "its sidecar file is not what this version writes"
        if meta["version"] > expected_version or meta["dimension"] != self.dimension:
            return None  # saved for another database (restored from a backup) or another model
        if self.path.stat().st_size != meta["bytes"]:
            return "its size is not the one recorded"
        data = self.path.read_bytes()
        if _checksum(data) != meta["blake2b"]:
            return "its checksum does not match"
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        if _layout_of(index) != layout or index.d != self.dimension or index.ntotal != meta["count"]:
            return "it is not an index of the kind its sidecar records"
        self._use(index, layout)
        self._snapshot, self._snapshot_bytes = meta["blake2b"], len(data)
        version = self._replay(meta["version"], expected_version)
        if version != expected_version:
            return None  # saved before the latest write (another process, or a crash between the two)
        if not np.array_equal(self.ids(), expected_ids):
            return None  # the same version number, reached by another process with other ids
        if layout_for(self.size, self.ann_threshold, layout).kind != layout.kind:
            log.info("The vector index %s is rebuilt as another kind (its size or the threshold changed)", self.path)
            return None
        return ""

    def saved(self) -> tuple[int, np.ndarray]:
        """The version and the sorted ids the files on disk hold, snapshot and delta (for checks and tests)."""
        meta = _read_meta(self.meta_path)
        layout = Layout.from_meta(meta.get("index")) if meta else None
        if meta is None or layout is None:
            raise ValueError(f"{self.meta_path} is not a sidecar")
        data = self.path.read_bytes()
        self._use(faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8)), layout)
        self._snapshot, self._snapshot_bytes = _checksum(data), len(data)
        return self._replay(meta["version"], 2**62), self.ids()

    def _replay(self, version: int, until: int) -> int:
        """Apply the delta's records that follow on from the snapshot, in order; return the version reached.

        Reading stops at the first record that is torn, damaged, out of sequence or for another snapshot; appending
        resumes only if nothing follows the last good record.
        """
        assert self._snapshot is not None
        try:
            data = self.delta_path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return version
        head = _DELTA_MAGIC + self._snapshot.encode()
        if not data.startswith(head):
            return version  # a delta left from an older snapshot, or damaged: its records are not ours
        at = len(head)
        while version < until and at + _RECORD.size + _DIGEST <= len(data):
            magic, record_version, added, removed, dimension = _RECORD.unpack_from(data, at)
            if magic != _RECORD_MAGIC or record_version != version + 1 or dimension != self.dimension:
                break
            if not (0 <= added <= len(data) and 0 <= removed <= len(data)):
                break
            end = at + _RECORD.size + added * (8 + 4 * dimension) + removed * 8
            if end + _DIGEST > len(data) or _record_digest(self._snapshot, data[at:end]) != data[end : end + _DIGEST]:
                break
            body = at + _RECORD.size
            ids = np.frombuffer(data, dtype=np.int64, count=added, offset=body)
            body += added * 8
            vectors = np.frombuffer(data, dtype=np.float32, count=added * dimension, offset=body)
            body += added * 4 * dimension
            gone = np.frombuffer(data, dtype=np.int64, count=removed, offset=body)
            if removed:
                self._remove(gone.copy())
            if added:
                self._index.add_with_ids(vectors.reshape(added, dimension).copy(), ids.copy())
            version, at = record_version, end + _DIGEST
        self._delta_bytes = at if at == len(data) else 0
        return version

    def reset(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Build the index anew from these vectors, of the kind their number calls for."""
        layout = layout_for(len(ids), self.ann_threshold)
        self._use(_new_index(layout, self.dimension), layout)
        self.add(ids, vectors)
        self._added = None

    def add(self, ids: np.ndarray | list[int], vectors: np.ndarray) -> None:
        if len(ids):
            ids = np.asarray(ids, dtype=np.int64)
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            self._index.add_with_ids(vectors, ids)
            if self._added is not None:
                self._added.append((ids, vectors))

    def remove(self, ids: list[int]) -> None:
        if ids:
            gone = np.asarray(ids, dtype=np.int64)
            self._remove(gone)
            self._removed.append(gone)

    def _remove(self, gone: np.ndarray) -> None:
        """Delete these ids' entries; in an HNSW graph, which cannot delete, mark them dead instead."""
        if self.layout.kind == "flat":
            self._index.remove_ids(gone)  # type: ignore[arg-type]
            return
        entries = self._entry_ids()
        hit = np.isin(entries, gone) & (entries != _DEAD)
        if hit.any():
            entries[hit] = _DEAD
            faiss.copy_array_to_vector(entries, self._index.id_map)
            self._index.construct_rev_map()
            self._dead += int(np.count_nonzero(hit))

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        if self.size == 0 or k <= 0:
            return []
        k = min(k, self.size)
        params = None
        if self.layout.kind == "hnsw":
            params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
            params.efSearch = max(self.layout.ef_search, k)
            if self._dead:
                params.sel = _LIVE
                # Dead entries take up candidate slots: keep as many live candidates as without them.
                params.efSearch = min(
                    int(self._index.ntotal), -(-params.efSearch * int(self._index.ntotal) // self.size)
                )
        scores, ids = self._index.search(np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32), k, params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def _wanted(self) -> Layout:
        return layout_for(self.size, self.ann_threshold, self.layout)

    def _needs_rebuild(self) -> bool:
        """Whether the next snapshot must be built anew: the kind changes, or too many dead entries."""
        return self._wanted().kind != self.layout.kind or self._dead > TOMBSTONE_SHARE * self._index.ntotal

    def _rebuild(self) -> None:
        """Build the index anew from the live vectors it holds, of the kind its size calls for."""
        entries = self._entry_ids()
        vectors = faiss.downcast_index(self._index.index).reconstruct_n(0, self._index.ntotal)
        live = entries != _DEAD
        layout = self._wanted()
        started = time.perf_counter()
        index = _new_index(layout, self.dimension)
        if live.any():
            index.add_with_ids(np.ascontiguousarray(vectors[live]), np.ascontiguousarray(entries[live]))
        log.info(
            "Rebuilt the vector index %s as %s (%d vectors, %d removed entries dropped) in %.1f s",
            self.path, layout.kind, int(live.sum()), self._dead, time.perf_counter() - started,
        )  # fmt: skip
        self._use(index, layout)

    def save(self, version: int) -> None:
        """Persist this version: one record appended to the delta, or a new snapshot when the delta has grown.

        A record is appended only when it follows on from what the files hold (the previous version, read or
        written by this object); a snapshot is written first, then an empty delta tied to it, then the sidecar with
        its version and checksum, so a crash in between is caught by ``load``. Failing to save is logged, not
        raised: the database already holds the write, and the next load rebuilds.
        """
        try:
            record = None if self._needs_rebuild() else self._record(version)
            if record is not None and self._delta_bytes + len(record) <= COMPACT_SHARE * self._snapshot_bytes:
                self._append(record)
            else:
                self._write_snapshot(version)
        except OSError as exc:
            self._snapshot, self._delta_bytes = None, 0
            log.warning("Could not save the vector index %s (%s): it will be rebuilt when next loaded", self.path, exc)
        finally:
            self.version = version
            self._added, self._removed = [], []

    def _record(self, version: int) -> bytes | None:
        """The delta record of this version's changes, or None if only a whole snapshot can save it."""
        if self._added is None or self._snapshot is None or not self._delta_bytes or version != self.version + 1:
            return None
        ids = [i for i, _ in self._added]
        vectors = [v for _, v in self._added]
        added = np.concatenate(ids) if ids else np.zeros(0, np.int64)
        removed = np.concatenate(self._removed) if self._removed else np.zeros(0, np.int64)
        body = (
            _RECORD.pack(_RECORD_MAGIC, version, len(added), len(removed), self.dimension)
            + added.astype("<i8").tobytes()
            + (np.vstack(vectors).astype("<f4").tobytes() if vectors else b"")
            + removed.astype("<i8").tobytes()
        )
        return body + _record_digest(self._snapshot, body)

    def _append(self, record: bytes) -> None:
        fd = os.open(self.delta_path, os.O_WRONLY | os.O_APPEND)  # never created here: it must follow its snapshot
        try:
            if os.fstat(fd).st_size != self._delta_bytes:
                raise OSError("the delta changed under us (another process)")
            os.write(fd, record)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._delta_bytes += len(record)

    def _write_snapshot(self, version: int) -> None:
        """Write the whole index, rebuilt first if its kind changes or its dead entries are too many."""
        self._snapshot, self._delta_bytes = None, 0
        if self._needs_rebuild():
            self._rebuild()
        elif self.layout.kind == "hnsw":
            self.layout = self._wanted()  # the same graph, its search tuned to its size now
            faiss.downcast_index(self._index.index).hnsw.efSearch = self.layout.ef_search  # type: ignore[attr-defined]
        data = faiss.serialize_index(self._index).tobytes()
        checksum = _checksum(data)
        meta = {
            "version": version,
            "count": int(self._index.ntotal),
            "dimension": self.dimension,
            "bytes": len(data),
            "index": self.layout.to_meta(),
        }
        _atomic_write(self.path, data)
        head = _DELTA_MAGIC + checksum.encode()
        _atomic_write(self.delta_path, head)
        _atomic_write(self.meta_path, json.dumps({**meta, "blake2b": checksum}).encode())
        self._snapshot, self._snapshot_bytes, self._delta_bytes = checksum, len(data), len(head)

    def delete_files(self) -> None:
        for path in (self.path, self.meta_path, self.delta_path):
            if path.is_dir() and not path.is_symlink():
                _move_aside(path)
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                path.unlink()
        self._snapshot, self._delta_bytes = None, 0

    def file_bytes(self) -> int:
        total = 0
        for path in (self.path, self.delta_path):
            with contextlib.suppress(OSError):
                total += path.stat().st_size if path.is_file() else 0
        return total


def _record_digest(snapshot: str, body: bytes) -> bytes:
    """A record's checksum, keyed by its snapshot's, so that no record can be read after another snapshot."""
    return hashlib.blake2b(body, digest_size=_DIGEST, key=bytes.fromhex(snapshot)).digest()
