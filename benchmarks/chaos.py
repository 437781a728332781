"""Kill the engine with SIGKILL at random moments of add, remove and rebuild, and check nothing is lost or torn.

    python benchmarks/chaos.py [--kills N] [--seed S] [--max-delay SECONDS]

A child process (this script with ``--child``) opens an engine on one data directory with the fake
embedder of ``tests/fakes/`` and loops over random adds (some of them repeats), removes and rebuilds,
printing each operation's start, the phase it is in (embedding, the SQLite transaction, saving FAISS, loading)
and its result; its fake model sleeps 5 ms a call so that embedding takes time, as it does for real. Each kill
aims, in turn, at one phase (within 10 ms of entering it), at start-up, or at a random moment; the parent then
reads what the child had reported and checks every invariant before the next child starts on the same
directory:

    lost          an article the child reported as added (and not removed) is missing
    inconsistent  any other broken invariant: an article without chunks or sentences, a span outside its
                  text, a removed article back, a saved FAISS index that its sidecar vouches for but whose ids
                  differ from SQLite's, FAISS ids after loading that differ from SQLite's chunk ids, an article
                  its own words do not find, an excerpt that differs from its text slice, a temporary file
                  left by a dead process after reopening, or integrity_check not "ok"

Target: 0 lost, 0 inconsistent.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from index.service import Engine  # noqa: E402
from index.settings import Settings  # noqa: E402
from index.store import Store  # noqa: E402
from index.vectors import VectorIndex  # noqa: E402
from tests.fakes.embedder import HashEmbedder  # noqa: E402

WORDS = (
    "council", "harbour", "ferry", "budget", "school", "bridge", "strike", "minister", "hospital", "river",
    "station", "library", "museum", "court", "contract", "election", "tunnel", "airport", "market", "factory",
    "union", "festival", "stadium", "police", "tram", "reservoir",
)  # fmt: skip
VERBS = (
    "approved", "delayed", "rejected", "funded", "reopened", "cancelled", "announced", "reviewed", "extended",
    "doubled",
)  # fmt: skip
DAYS = (
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
)  # fmt: skip


def name_of(key: int) -> str:
    """A made-up proper name unique to one article, so that asking for it finds that article."""
    rng = random.Random(key)
    return "".join(rng.choice("bdfgklmnprstvz") + rng.choice("aeiou") for _ in range(4)).capitalize()


def article_text(key: int) -> str:
    rng = random.Random(key)
    name = name_of(key)
    sentences = [
        f"{name} {rng.choice(VERBS)} the {rng.choice(WORDS)} plan on {rng.choice(DAYS)}, officials said."
        for _ in range(rng.randint(3, 40))
    ]
    return f"{name} and the {rng.choice(WORDS)}\n\n" + " ".join(sentences)


# --- the child: an engine doing random work until it is killed ------------------------------------------


def child(data_dir: Path, seed: int) -> None:
    def emit(line: str) -> None:
        os.write(1, (line + "\n").encode())

    current = ["start"]

    def phase(name: str, function):  # type: ignore[no-untyped-def]
        def wrapped(*args, **kwargs):  # type: ignore[no-untyped-def]
            emit(f"phase {current[0]}.{name}")
            return function(*args, **kwargs)

        return wrapped

    Engine._embed = phase("embed", Engine._embed)  # type: ignore[method-assign]
    Engine._load = phase("load", Engine._load)  # type: ignore[method-assign]
    Store.add_article = phase("sqlite", Store.add_article)  # type: ignore[method-assign]
    Store.remove_article = phase("sqlite", Store.remove_article)  # type: ignore[method-assign]
    Store.replace_pieces = phase("sqlite", Store.replace_pieces)  # type: ignore[method-assign]
    VectorIndex.save = phase("faiss-save", VectorIndex.save)  # type: ignore[method-assign]
    VectorIndex.delete_files = phase("faiss-delete", VectorIndex.delete_files)  # type: ignore[method-assign]

    class SlowerEmbedder(HashEmbedder):
        """The fake model, taking a few milliseconds a call as a real one takes seconds, so kills can land in it."""

        def encode(self, texts, batch_size=16):  # type: ignore[no-untyped-def]
            time.sleep(0.005)
            return super().encode(texts, batch_size)

    emit("phase open")
    engine = Engine(Settings(_env_file=None, data_dir=data_dir), embedder=SlowerEmbedder())  # type: ignore[call-arg]
    rng = random.Random(seed)
    known: list[int] = []
    emit("ready")
    while True:
        roll = rng.random()
        if roll < 0.55:
            key = rng.choice(known) if known and rng.random() < 0.15 else rng.randrange(10**9)
            current[0] = "add"
            emit(f"begin add {key}")
            result = engine.add_text(article_text(key), title=None)
            known.append(key)
            emit(f"{'duplicate' if result.duplicate else 'added'} {key} {result.article.id}")
        elif roll < 0.85:
            articles = engine.articles()
            if not articles:
                continue
            target = rng.choice(articles).id
            current[0] = "remove"
            emit(f"begin remove {target}")
            engine.remove(target)
            emit(f"removed {target}")
        else:
            current[0] = "rebuild"
            emit("begin rebuild")
            engine.rebuild()
            emit("rebuilt")


# --- the parent: kill, then check ----------------------------------------------------------------------


@dataclass
class State:
    expected: dict[int, int] = field(default_factory=dict)  # article id -> key, reported and not removed
    removed: set[int] = field(default_factory=set)
    operations: Counter[str] = field(default_factory=Counter)
    phases: Counter[str] = field(default_factory=Counter)


def read_events(lines: list[str], state: State) -> str:
    """Apply what the child reported; return the phase it was in when it died."""
    last = "before start-up"
    in_flight: list[str] = []
    for line in lines:
        word, *rest = line.split()
        if word == "phase":
            last = rest[0]
        elif word == "ready":
            last = "idle"
        elif word == "begin":
            in_flight = rest
        elif word in ("added", "duplicate"):
            state.expected[int(rest[1])] = int(rest[0])
            state.operations[word] += 1
            in_flight = []
        elif word == "removed":
            article_id = int(rest[0])
            state.expected.pop(article_id, None)
            state.removed.add(article_id)
            state.operations["removed"] += 1
            in_flight = []
        elif word == "rebuilt":
            state.operations["rebuilt"] += 1
            in_flight = []
    if in_flight[:1] == ["remove"]:  # it may or may not have gone: both are fine
        state.expected.pop(int(in_flight[1]), None)
    return last


def saved_index_problem(data_dir: Path) -> str | None:
    """A saved index that its sidecar vouches for (version and checksum) must hold exactly SQLite's chunk ids."""
    store = Store(data_dir / "newsquote.db")
    try:
        info = store.collection("default")
        ids, _ = store.chunk_vectors("default")
    finally:
        store.close()
    if info.dimension is None:
        return None
    index = VectorIndex(data_dir / "faiss", "default", info.dimension)
    try:
        meta = json.loads(index.meta_path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("version") != info.version:
        return None  # out of date, so not trusted: fine
    data = index.path.read_bytes() if index.path.is_file() else b""
    if hashlib.blake2b(data, digest_size=32).hexdigest() != meta.get("blake2b"):
        return None  # damaged or torn, so not trusted: fine
    saved = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
    saved_ids = np.sort(faiss.vector_to_array(saved.id_map))
    saved_ids = saved_ids[saved_ids != -1]  # removed entries an HNSW graph keeps (NEWSQUOTE_ANN_THRESHOLD)
    if not np.array_equal(saved_ids, np.sort(ids)):
        return f"a saved index vouched for at version {info.version} holds other ids than SQLite"
    return None


def check(data_dir: Path, state: State) -> tuple[list[int], list[str]]:
    """Return the lost article ids and every broken invariant."""
    problems: list[str] = []
    if (data_dir / "newsquote.db").exists():
        problem = saved_index_problem(data_dir)
        if problem:
            problems.append(problem)
    engine = Engine(Settings(_env_file=None, data_dir=data_dir), embedder=HashEmbedder())  # type: ignore[call-arg]
    try:
        leftovers = sorted(p.name for p in (data_dir / "faiss").glob("*.tmp"))
        if leftovers:
            problems.append(f"temporary files left after reopening: {leftovers}")
        store = engine.store
        present = {a.id: a for a in engine.articles()}
        lost = sorted(set(state.expected) - set(present))
        back = sorted(state.removed & set(present))
        if back:
            problems.append(f"removed articles are back: {back}")
        chunks = store.chunks("default", store.chunk_vectors("default")[0].tolist())
        for article_id in present:
            text = store.article_text(article_id)
            mine = [c for c in chunks.values() if c.article_id == article_id]
            sentences = store.sentences(article_id, 0, len(text))
            if not mine or not sentences:
                problems.append(f"article #{article_id} has {len(mine)} chunks and {len(sentences)} sentences")
            if any(not 0 <= p.start < p.end <= len(text) for p in [*mine, *sentences]):
                problems.append(f"article #{article_id} has a span outside its text")
        if present:
            loaded = engine._load("default")
            chunk_ids, _ = store.chunk_vectors("default")
            if sorted(loaded.vectors.ids().tolist()) != sorted(chunk_ids.tolist()):
                problems.append("FAISS ids after loading differ from SQLite's chunk ids")
        for article_id, key in state.expected.items():
            if article_id not in present:
                continue
            answer = engine.ask(f"what did {name_of(key)} do?", k=3)
            if article_id not in [r.article_id for r in answer.results]:
                problems.append(f"article #{article_id} is not found by its own name")
            for r in answer.results:
                if r.text != store.article_text(r.article_id)[r.start : r.end]:
                    problems.append(f"an excerpt of #{r.article_id} differs from its text slice")
        with sqlite3.connect(data_dir / "newsquote.db") as db:
            verdict = db.execute("PRAGMA integrity_check").fetchone()[0]
        if verdict != "ok":
            problems.append(f"integrity_check: {verdict}")
    finally:
        engine.close()
    return lost, problems


# Each kill waits for one of these moments, in turn, then strikes within 10 ms.
TARGETS = [
    "add.embed",
    "add.sqlite",
    "add.faiss-save",
    "remove.sqlite",
    "remove.faiss-save",
    "rebuild.embed",
    "rebuild.sqlite",
    "rebuild.faiss-delete",
    "rebuild.faiss-save",
    ".load",
    "start-up",
    "anywhere",
]


def pump(proc: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    for line in proc.stdout or ():
        if line.strip():
            lines.put(line.strip())


def wait_for(lines: queue.Queue[str], target: str, seen: list[str], timeout: float = 10.0) -> None:
    """Collect the child's lines until one announces ``target`` (or time runs out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return
        seen.append(line)
        if line == target or (line.startswith("phase ") and line.endswith(target)):
            return


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-delay", type=float, default=0.8, help="longest wait for an 'anywhere' kill")
    parser.add_argument("--child", nargs=2, metavar=("DATA_DIR", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), int(args.child[1]))
        return 0

    rng = random.Random(args.seed)
    state = State()
    lost_total: set[int] = set()
    inconsistent = 0
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="newsquote-chaos-") as tmp:
        data_dir = Path(tmp) / "data"
        for n in range(args.kills):
            proc = subprocess.Popen(
                [sys.executable, __file__, "--child", str(data_dir), str(args.seed * 100_000 + n)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,  # small: only a traceback, read at the end
                text=True,
            )
            lines: queue.Queue[str] = queue.Queue()
            reader = threading.Thread(target=pump, args=(proc, lines))
            reader.start()
            seen: list[str] = []
            target = TARGETS[n % len(TARGETS)]
            if target == "start-up":  # imports, opening the database, loading or rebuilding the index
                time.sleep(rng.uniform(0.2, 1.5))
            elif target == "anywhere":
                wait_for(lines, "ready", seen)
                time.sleep(rng.uniform(0, args.max_delay))
            else:
                wait_for(lines, target, seen)
                time.sleep(rng.uniform(0, 0.01))
            proc.send_signal(signal.SIGKILL)
            err = proc.communicate()[1]
            reader.join()
            seen.extend(lines.get() for _ in range(lines.qsize()))
            if proc.returncode != -signal.SIGKILL:
                print(f"kill {n}: the child ended by itself ({proc.returncode}): {err.strip()[-500:]}")
                inconsistent += 1
            phase = read_events(seen, state)
            state.phases[phase] += 1
            lost, problems = check(data_dir, state)
            for article_id in lost:
                state.expected.pop(article_id, None)
            lost_total.update(lost)
            inconsistent += len(problems)
            for problem in problems:
                print(f"kill {n} (during {phase}): {problem}")
            if lost:
                print(f"kill {n} (during {phase}): lost {lost}")
    elapsed = time.perf_counter() - began
    print(f"kills: {args.kills}  lost: {len(lost_total)}  inconsistent: {inconsistent}  ({elapsed:.0f} s)")
    print("completed operations: " + ", ".join(f"{k} {v}" for k, v in sorted(state.operations.items())))
    print("kills by phase: " + ", ".join(f"{k} {v}" for k, v in sorted(state.phases.items())))
    print(f"articles present at the end: {len(state.expected)} reported, all checked")
    return 1 if lost_total or inconsistent else 0


if __name__ == "__main__":
    sys.exit(main())
