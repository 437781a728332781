"""Several processes on one data directory: the same article added at once, a new directory opened at once."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from index.models import ExtractedArticle
from index.service import Engine
from index.settings import Settings
from index.store import DuplicateArticle, NewPiece, Store
from tests.fakes.embedder import HashEmbedder
from tests.index.articles import PHONE_CALL

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 8

# Two long-lived engines add the same article in each round, started at the same instant.
ADD_TOGETHER = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from index.service import Engine
from index.settings import Settings
from tests.fakes.embedder import HashEmbedder
from tests.index.articles import PHONE_CALL
data_dir, start, rounds = Path(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
engine = Engine(Settings(_env_file=None, data_dir=data_dir), embedder=HashEmbedder())
for n in range(rounds):
    while time.time() < start + n * 0.25:
        pass
    result = engine.add_text(PHONE_CALL.replace("Wednesday", f"Wednesday {n}"))
    print(json.dumps([n, result.article.id, result.duplicate]), flush=True)
engine.close()
"""

# Each process opens a new data directory per round, all at the same instant, then adds one article there.
OPEN_TOGETHER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from index.service import Engine
from index.settings import Settings
from tests.fakes.embedder import HashEmbedder
root, start, rounds, me = Path(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
for n in range(rounds):
    while time.time() < start + n * 0.25:
        pass
    engine = Engine(Settings(_env_file=None, data_dir=root / str(n)), embedder=HashEmbedder())
    engine.add_text(f"Report {me} of round {n}\\n\\nThe council met on Monday, officials said. It approved the "
                    f"budget for the {me} district. The vote was unanimous.")
    engine.close()
"""


def run_together(code: str, *args: str, processes: int = 2) -> list[subprocess.CompletedProcess[str]]:
    start = time.time() + 2.0  # enough for every interpreter to import the engine first
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(ROOT), *args[:1], str(start), *args[1:], f"p{n}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(processes)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


def test_the_same_article_added_by_two_processes_at_once_is_stored_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first, second = run_together(ADD_TOGETHER, str(data_dir), str(ROUNDS))
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    a = [json.loads(line) for line in first.stdout.splitlines()]
    b = [json.loads(line) for line in second.stdout.splitlines()]
    assert len(a) == len(b) == ROUNDS
    for (n, id_a, dup_a), (_, id_b, dup_b) in zip(a, b, strict=True):
        assert id_a == id_b, n  # the loser is told which article it is
        assert sorted([dup_a, dup_b]) == [False, True], n  # exactly one of them stored it
    store = Store(data_dir / "newsquote.db")
    try:
        assert store.counts("default")[0] == ROUNDS
    finally:
        store.close()


def test_two_processes_opening_a_new_data_directory_at_once_both_succeed(tmp_path: Path) -> None:
    results = run_together(OPEN_TOGETHER, str(tmp_path), str(ROUNDS), processes=3)
    for result in results:
        assert result.returncode == 0, result.stderr
    for n in range(ROUNDS):
        store = Store(tmp_path / str(n) / "newsquote.db")
        try:
            assert store.counts("default")[0] == 3
        finally:
            store.close()


# --- the same, made deterministic ---------------------------------------------------------------------------


def piece() -> NewPiece:
    return NewPiece(0, 10, np.ones(4, dtype=np.float32) / 2)


def add(store: Store, text: str = "Bridge reopens on Monday.", url: str | None = None):
    return store.add_article(
        "default",
        ExtractedArticle(text=text, title="Bridge", url=url),
        canonical_url=url,
        text_hash=text.lower(),
        added_by=None,
        chunks=[piece()],
        sentences=[piece()],
        model="m",
        dimension=4,
    )


@pytest.mark.parametrize("url", [None, "https://news.example/bridge"])
def test_an_article_added_by_another_connection_since_we_looked_is_a_duplicate(tmp_path: Path, url) -> None:
    ours, theirs = Store(tmp_path / "n.db"), Store(tmp_path / "n.db")
    try:
        assert ours.find_duplicate("default", url, "bridge reopens on monday.") is None  # we look: not there
        winner, _ = add(theirs, url=url)  # another process adds it
        with pytest.raises(DuplicateArticle) as lost:
            add(ours, url=url)
        assert lost.value.article == winner
        assert lost.value.reason == ("url" if url else "text")
        assert ours.counts("default") == (1, 1, 1)
        assert ours.collection("default").version == 1  # the loser wrote nothing, not even a version
    finally:
        ours.close()
        theirs.close()


def test_the_engine_reports_the_race_it_lost_as_a_duplicate(settings: Settings) -> None:
    winner = Engine(settings, embedder=HashEmbedder())
    loser = Engine(settings, embedder=HashEmbedder())
    try:
        look = loser.store.find_duplicate

        def too_early(*args):  # type: ignore[no-untyped-def]
            # Every look before the write lock finds nothing, as if the winner were a moment later.
            return look(*args) if loser.store._db.in_transaction else None

        loser.store.find_duplicate = too_early  # type: ignore[method-assign]
        stored = winner.add_text(PHONE_CALL)
        result = loser.add_text(PHONE_CALL)
        assert result.duplicate
        assert result.article.id == stored.article.id
        assert result.reason == "text"
    finally:
        winner.close()
        loser.close()


def test_opening_waits_for_a_database_another_process_has_locked(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")  # a brand-new file, locked as while another process creates it
    threading.Timer(0.5, other.execute, ["ROLLBACK"]).start()
    began = time.monotonic()
    store = Store(path)
    try:
        assert time.monotonic() - began >= 0.4
        assert store.counts("default") == (0, 0, 0)
    finally:
        store.close()
        other.close()


def test_opening_gives_up_after_the_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        began = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            Store(path, busy_timeout=0.3)
        assert time.monotonic() - began < 5
    finally:
        other.close()
