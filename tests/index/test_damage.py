"""Damage on disk: a derived FAISS index that cannot be trusted is rebuilt; a damaged SQLite file gives one line.

The command-line tests run ``python -m index``'s own ``main`` in a subprocess with the fake embedder, so they
check exactly what a user sees (one line, the exit code, no traceback) without loading the model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from index.errors import DatabaseDamagedError
from index.service import Engine
from index.settings import Settings
from index.store import Store
from index.vectors import VectorIndex, prepare_directory
from tests.fakes.embedder import HashEmbedder
from tests.index.articles import BAKERY_STRIKE, PHONE_CALL

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "who said the call with the port authority chief happened?"
NEW_ARTICLE = (
    "Harbour ferry timetable changes from May\n\nThe harbour ferry will leave every twenty minutes from May, the "
    "operator said on Monday. Evening crossings will end at eleven instead of midnight. Season tickets keep their "
    "price until the end of the year, a spokesperson added."
)
FAKE_CLI = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); import index.__main__ as cli; "
    "from index.service import Engine; from tests.fakes.embedder import HashEmbedder; "
    "cli.Engine = lambda settings: Engine(settings, embedder=HashEmbedder()); sys.exit(cli.main(sys.argv[1:]))"
)


def answer_of(engine: Engine) -> list[tuple[int, int, int, str]]:
    return [(x.article_id, x.start, x.end, x.text) for x in engine.ask(QUESTION).results]


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[int, int, int, str]]]:
    """A data directory holding two articles, closed, and the answer it gives."""
    data_dir = tmp_path_factory.mktemp("library") / "data"
    engine = Engine(Settings(_env_file=None, data_dir=data_dir), embedder=HashEmbedder())  # type: ignore[call-arg]
    engine.add_text(PHONE_CALL)
    engine.add_text(BAKERY_STRIKE)
    answer = answer_of(engine)
    engine.close()
    return data_dir, answer


@pytest.fixture
def data_dir(library: tuple[Path, list], tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(library[0], copy)
    return copy


@pytest.fixture
def reference(library: tuple[Path, list]) -> list[tuple[int, int, int, str]]:
    return library[1]


def open_engine(data_dir: Path) -> Engine:
    return Engine(Settings(_env_file=None, data_dir=data_dir), embedder=HashEmbedder())  # type: ignore[call-arg]


def index_files(data_dir: Path) -> tuple[Path, Path]:
    index = next((data_dir / "faiss").glob("*.faiss"))
    return index, index.with_suffix(".json")


def flip(path: Path, offset: int, xor: int = 0xFF) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= xor
    path.write_bytes(bytes(data))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the FAISS index: rebuilt whenever it cannot be read or trusted ----------------------------------------


def _sidecar(content: str):  # type: ignore[no-untyped-def]
    return lambda d: index_files(d)[1].write_text(content)


def _edit_sidecar(key: str, value: object):  # type: ignore[no-untyped-def]
    def damage(d: Path) -> None:
        meta = json.loads(index_files(d)[1].read_text())
        index_files(d)[1].write_text(json.dumps({**meta, key: value}))

    return damage


def _id_list_length(d: Path) -> None:
    """The 8 bytes before the ids at the end of an IndexIDMap2 give their number; a flip there once cost 2^60."""
    index, sidecar = index_files(d)
    count = json.loads(sidecar.read_text())["count"]
    flip(index, index.stat().st_size - 8 * count - 1, 0x10)


def _index_to_folder(d: Path, with_file: bool = False) -> None:
    index = index_files(d)[0]
    index.unlink()
    index.mkdir()
    if with_file:
        (index / "x").write_text("x")


def _faiss_dir_to_file(d: Path) -> None:
    shutil.rmtree(d / "faiss")
    (d / "faiss").write_text("a file where the folder was")


FAISS_DAMAGE = {
    "sidecar is null": _sidecar("null"),
    "sidecar is a list": _sidecar("[]"),
    "sidecar is a string": _sidecar('"x"'),
    "sidecar is empty": _sidecar(""),
    "sidecar is not json": _sidecar("{nope"),
    "sidecar lacks the checksum": _edit_sidecar("blake2b", None),
    "sidecar version is a string": _edit_sidecar("version", "2"),
    "sidecar version is true": _edit_sidecar("version", True),
    "sidecar count is a list": _edit_sidecar("count", [1]),
    "id-list length flipped": _id_list_length,
    "a vector byte flipped": lambda d: flip(index_files(d)[0], 200, 0x01),
    "the header flipped": lambda d: flip(index_files(d)[0], 0),
    "index truncated": lambda d: os.truncate(index_files(d)[0], 100),
    "index emptied": lambda d: os.truncate(index_files(d)[0], 0),
    "index is an empty folder": _index_to_folder,
    "index is a folder with a file": lambda d: _index_to_folder(d, with_file=True),
    "sidecar is a folder": lambda d: (index_files(d)[1].unlink(), index_files(d)[1].mkdir()),
    "faiss folder is a file": _faiss_dir_to_file,
}


@pytest.mark.parametrize("damage", FAISS_DAMAGE.values(), ids=FAISS_DAMAGE.keys())
def test_a_damaged_index_is_rebuilt_from_sqlite_and_answers_as_before(
    data_dir: Path, reference: list, damage, caplog: pytest.LogCaptureFixture
) -> None:
    damage(data_dir)
    before = digest(data_dir / "newsquote.db")
    with caplog.at_level(logging.WARNING):
        engine = open_engine(data_dir)
        try:
            assert answer_of(engine) == reference
            engine.add_text(NEW_ARTICLE)
        finally:
            engine.close()
    assert "vector index" in caplog.text
    again = open_engine(data_dir)  # what was saved after the rebuild is trusted
    try:
        index, _ = index_files(data_dir)
        info = again.store.collection("default")
        assert VectorIndex(index.parent, "default", info.dimension or 0).load(
            info.version, again.store.chunk_vectors("default")[0]
        )
    finally:
        again.close()
    assert before != digest(data_dir / "newsquote.db")  # the add went through


def test_every_single_byte_flip_in_a_saved_index_is_caught(tmp_path: Path) -> None:
    ids = np.array([11, 22, 33], dtype=np.int64)
    vectors = np.eye(3, 8, dtype=np.float32)
    index = VectorIndex(tmp_path, "default", 8)
    index.reset(ids, vectors)
    index.save(version=5)
    pristine = index.path.read_bytes()
    for offset in range(len(pristine)):
        damaged = bytearray(pristine)
        damaged[offset] ^= 0x01
        index.path.write_bytes(bytes(damaged))
        assert not VectorIndex(tmp_path, "default", 8).load(5, ids), offset
    index.path.write_bytes(pristine)
    assert VectorIndex(tmp_path, "default", 8).load(5, ids)


def test_stale_temporary_files_are_deleted_on_open_and_live_ones_kept(tmp_path: Path) -> None:
    directory = tmp_path / "faiss"
    directory.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    killed = directory / f"default-1.faiss.{dead.stdout.strip()}.k3j4l5.tmp"
    old = directory / "default-1.faissab12cd.tmp"  # the naming before process ids
    live = directory / f"default-1.json.{os.getpid()}.zz9x8y.tmp"
    for path in (killed, old, live):
        path.write_bytes(b"half")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    prepare_directory(directory)
    assert sorted(p.name for p in directory.iterdir()) == [live.name]


def test_a_kill_while_saving_leaves_no_temporary_file_after_the_next_open(data_dir: Path) -> None:
    code = (
        "import os, sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path; import index.vectors as v\n"
        "real = os.replace\n"
        "os.replace = lambda *a: os.kill(os.getpid(), 9)\n"
        "v._atomic_write(Path(sys.argv[2]), b'x' * 1000)\n"
    )
    target = index_files(data_dir)[0]
    killed = subprocess.run([sys.executable, "-c", code, str(ROOT), str(target)], check=False)
    assert killed.returncode == -9
    assert list((data_dir / "faiss").glob("*.tmp"))
    open_engine(data_dir).close()
    assert not list((data_dir / "faiss").glob("*.tmp"))


# --- SQLite: damage gives one clear line, and the file is left as it is ------------------------------------


def run_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSQUOTE_")}
    return subprocess.run(
        [sys.executable, "-c", FAKE_CLI, str(ROOT), *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env={**env, "PYTHONIOENCODING": "utf-8"},
        cwd=data_dir.parent,
        timeout=120,
        check=False,
    )


def assert_one_line(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: The database ")
    for fragment in fragments:
        assert fragment in lines[0]


def page_of(db_path: Path, table: str) -> int:
    with sqlite3.connect(db_path) as db:
        return int(db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0])


def damage_page(db_path: Path, table: str) -> None:
    """Give a table's root page an impossible page type: SQLite says "malformed" only once it reads that table."""
    with db_path.open("r+b") as handle:
        page_size = int.from_bytes(handle.read(18)[16:18], "big")
        handle.seek((page_of(db_path, table) - 1) * page_size)
        handle.write(b"\x07")


def replace_bytes(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert data.count(old) == 1
    path.write_bytes(data.replace(old, new))


def test_a_flipped_header_write_version_gives_one_line(data_dir: Path) -> None:
    db = data_dir / "newsquote.db"
    flip(db, 18)  # SQLite would open it read-only: "attempt to write a readonly database" on the first write
    before = digest(db)
    for command in (["ask", QUESTION], ["add", "--text", NEW_ARTICLE]):  # the database is refused when opened
        assert_one_line(run_cli(data_dir, *command), str(db), "integrity_check", ".recover", "backup")
    assert digest(db) == before


def test_the_real_command_line_gives_the_same_one_line(data_dir: Path) -> None:
    db = data_dir / "newsquote.db"
    flip(db, 18)
    before = digest(db)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSQUOTE_")}
    result = subprocess.run(
        [sys.executable, "-m", "index", "list", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=env,
        cwd=data_dir.parent,
        timeout=120,
        check=False,
    )
    assert_one_line(result, str(db))
    assert digest(db) == before


def test_a_damaged_page_no_command_reads_first_is_found_on_opening(data_dir: Path) -> None:
    db = data_dir / "newsquote.db"
    damage_page(db, "sentences")
    before = digest(db)
    assert_one_line(run_cli(data_dir, "list"), "integrity_check: *** in database main ***")
    assert_one_line(run_cli(data_dir, "add", "--text", NEW_ARTICLE), "integrity_check")
    assert digest(db) == before


def test_a_hidden_article_is_found_on_opening(data_dir: Path) -> None:
    """A damaged collection name would hide an article from every query: the indexes still know it."""
    db = data_dir / "newsquote.db"
    with sqlite3.connect(db) as conn:
        text = conn.execute("SELECT text FROM articles WHERE id = 1").fetchone()[0]
    data = db.read_bytes()
    at = data.index(b"default" + text[:40].encode())  # the row's record, not an index entry
    db.write_bytes(data[:at] + b"defaulu" + data[at + 7 :])
    assert_one_line(run_cli(data_dir, "list"), "integrity_check", "missing from index")


@pytest.mark.parametrize(
    ("name", "damage", "fragment"),
    [
        ("header magic", lambda db: flip(db, 3), "does not begin with a SQLite header"),
        ("page size", lambda db: flip(db, 16), "page size"),
        ("text encoding", lambda db: flip(db, 59, 0x02), "text encoding"),
        ("truncated", lambda db: os.truncate(db, db.stat().st_size // 2), "pages of"),
        ("schema text", lambda db: replace_bytes(db, b"version INTEGER", b"versioo INTEGER"), "definition of table"),
        ("not a database", lambda db: db.write_bytes(b"hello" * 1000), "SQLite header"),
    ],
)
def test_damage_seen_on_opening_is_refused_before_anything_is_read(
    data_dir: Path, name: str, damage, fragment: str
) -> None:
    db = data_dir / "newsquote.db"
    damage(db)
    before = digest(db)
    with pytest.raises(DatabaseDamagedError) as caught:
        Store(db)
    message = str(caught.value)
    assert fragment in message
    assert "integrity_check" in message
    assert "\n" not in message
    assert digest(db) == before
    assert sorted(p.name for p in data_dir.iterdir()) == ["faiss", "newsquote.db"]  # no -wal, no -shm


def test_a_damaged_article_text_is_never_quoted_and_can_be_removed(data_dir: Path) -> None:
    db = data_dir / "newsquote.db"
    replace_bytes(db, b"Julian", b"Julien")  # a valid text, silently different: only the checksum can tell
    before = digest(db)
    assert_one_line(run_cli(data_dir, "ask", QUESTION), "article #1 does not match its checksum", "remove 1")
    assert digest(db) == before
    removed = run_cli(data_dir, "remove", "1")
    assert removed.returncode == 0, removed.stderr
    assert run_cli(data_dir, "list").returncode == 0


def test_a_damaged_sentence_vector_is_never_used_and_rebuild_repairs_it(data_dir: Path) -> None:
    db = data_dir / "newsquote.db"
    with sqlite3.connect(db) as conn:
        vector = conn.execute("SELECT vector FROM sentences WHERE article_id = 1 ORDER BY id LIMIT 1").fetchone()[0]
    damaged = bytearray(vector)
    damaged[next(i for i, b in enumerate(vector) if b)] ^= 0x40  # a sign or exponent bit of one component
    replace_bytes(db, vector, bytes(damaged))
    assert_one_line(run_cli(data_dir, "ask", QUESTION), "sentence #", "checksum", "rebuild")
    assert run_cli(data_dir, "rebuild").returncode == 0
    assert run_cli(data_dir, "ask", QUESTION).returncode == 0


def test_undecodable_text_is_reported_as_damage_not_a_decoding_traceback(data_dir: Path) -> None:
    db = data_dir / "newsquote.db"
    replace_bytes(db, b"Julian", b"Juli\xffn")
    store = Store(db)
    try:
        with pytest.raises(DatabaseDamagedError, match="article #1 does not match its checksum"):
            store.articles("default")
    finally:
        store.close()


def test_damage_met_after_opening_stops_every_later_use(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = data_dir / "newsquote.db"
    damage_page(db, "chunks")
    monkeypatch.setattr(Store, "_check", lambda *args, **kwargs: "ok")  # as if the damage came after opening
    store = Store(db)
    monkeypatch.undo()
    try:
        with pytest.raises(DatabaseDamagedError, match="malformed"):
            store.chunk_vectors("default")
        with pytest.raises(DatabaseDamagedError):  # even what would still work: the file is not trusted
            store.articles("default")
    finally:
        store.close()
