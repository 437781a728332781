"""Damage a data directory in every way a disk or a person can, and check what the command line does.

    python benchmarks/corruption.py [--flips N] [--seed S] [--workers W] [--verbose]

A small library (four articles) is built once with the fake embedder. Each case copies it, damages the copy
(single-byte flips across the SQLite file and the FAISS file, truncations, wrong JSON in the sidecar, folders
and files swapped, leftover temporary files), then runs in one subprocess: ``list``, three ``ask``s and an
``add``, through the real command-line code. Each case ends as one of:

    ok        every answer and the list are exactly those of the undamaged library (the damage was harmless,
              or out of the way of these commands)
    rebuilt   the same, after the FAISS index was found unusable and rebuilt from SQLite
    error     at least one command stopped with one clear line (``error: ...``) and no traceback
    traceback a traceback was printed (target 0)
    wrong     a command succeeded with an answer or list different from the undamaged one (target 0)
    crash     the process died from a signal (target 0)

``modified`` counts the cases where a command that reported damage changed the SQLite file's bytes (target 0:
a damaged database is never written to). A command that meets no damage may still write, e.g. the ``add``
after a damaged sentence was reported, as it would in any other process.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.index.articles import BAKERY_STRIKE, LIBRARY_HOURS, PHONE_CALL, STADIUM_VOTE  # noqa: E402

FAKE_CLI = ROOT / "benchmarks" / "fake_cli.py"  # replaced by a frozen copy in main()
QUESTIONS = [
    "who claimed the call happened?",
    "why did the bakery workers walk out?",
    "when will the libraries open on Sundays?",
]
NEW_ARTICLE = (
    "Harbour ferry timetable changes from May\n\nThe harbour ferry will leave every twenty minutes from May, the "
    "operator said on Monday. Evening crossings will end at eleven instead of midnight. Season tickets keep their "
    "price until the end of the year, a spokesperson added."
)
OUTCOMES = ["ok", "rebuilt", "error", "traceback", "wrong", "crash"]


@dataclass(frozen=True)
class Case:
    kind: str
    name: str
    damage: Callable[[Path], None]


def clean_env() -> dict[str, str]:
    # NEWSQUOTE_ANN_THRESHOLD is kept, so that the damage can be aimed at an approximate (HNSW) index too.
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSQUOTE_") or k == "NEWSQUOTE_ANN_THRESHOLD"}
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def freeze_code(scratch: Path) -> Path:
    """Copy the code the subprocesses run, so that edits made to the working tree meanwhile cannot change
    answers halfway through (which would be counted as wrong answers)."""
    code = scratch / "code"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "index", code / "index", ignore=ignore)
    shutil.copytree(ROOT / "tests" / "fakes", code / "tests" / "fakes", ignore=ignore)
    shutil.copy2(ROOT / "tests" / "__init__.py", code / "tests" / "__init__.py")
    (code / "benchmarks").mkdir()
    shutil.copy2(FAKE_CLI, code / "benchmarks" / "fake_cli.py")
    return code / "benchmarks" / "fake_cli.py"


def run_script(data_dir: Path, commands: list[list[str]]) -> tuple[int, list[dict], str]:
    """Run commands in one subprocess with the fake embedder; return its exit code, their results, its stderr."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, dir=data_dir.parent) as handle:
        json.dump([[*argv, "--data-dir", str(data_dir)] for argv in commands], handle)
    proc = subprocess.run(
        [sys.executable, str(FAKE_CLI), "--script", handle.name],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=data_dir.parent,
        timeout=300,
        check=False,
    )
    os.unlink(handle.name)
    results = json.loads(proc.stdout) if proc.returncode == 0 and proc.stdout.strip() else []
    return proc.returncode, results, proc.stderr


def commands() -> list[list[str]]:
    return [["list", "--json"], *[["ask", q, "--json", "-k", "3"] for q in QUESTIONS], ["add", "--text", NEW_ARTICLE]]


def answers(results: list[dict]) -> list[object]:
    """What must not change: the list, and each answer's excerpts with their places and articles."""
    seen: list[object] = []
    for r in results[:4]:
        if r["code"] != 0:
            seen.append(None)
            continue
        data = json.loads(r["stdout"])
        if isinstance(data, list):  # list --json
            seen.append([(a["id"], a["title"], a["url"], a["chars"], a["chunks"]) for a in data])
        else:
            seen.append(
                (
                    data["answered"],
                    [(x["article_id"], x["title"], x["start"], x["end"], x["excerpt"]) for x in data["results"]],
                )
            )
    return seen


# --- damage ---------------------------------------------------------------------------------------


def flip(path_of: Callable[[Path], Path], offset: int, xor: int) -> Callable[[Path], None]:
    def damage(data_dir: Path) -> None:
        path = path_of(data_dir)
        data = bytearray(path.read_bytes())
        data[offset] ^= xor
        path.write_bytes(bytes(data))

    return damage


def truncate(path_of: Callable[[Path], Path], size: int) -> Callable[[Path], None]:
    def damage(data_dir: Path) -> None:
        with path_of(data_dir).open("r+b") as handle:
            handle.truncate(size)

    return damage


def write(path_of: Callable[[Path], Path], content: str) -> Callable[[Path], None]:
    def damage(data_dir: Path) -> None:
        path_of(data_dir).write_text(content)

    return damage


def edit_meta(change: Callable[[dict], object]) -> Callable[[Path], None]:
    def damage(data_dir: Path) -> None:
        path = sidecar(data_dir)
        path.write_text(json.dumps(change(json.loads(path.read_text()))))

    return damage


def to_folder(path_of: Callable[[Path], Path], with_file: bool = False) -> Callable[[Path], None]:
    def damage(data_dir: Path) -> None:
        path = path_of(data_dir)
        path.unlink()
        path.mkdir()
        if with_file:
            (path / "something").write_text("x")

    return damage


def faiss_dir_to_file(data_dir: Path) -> None:
    shutil.rmtree(data_dir / "faiss")
    (data_dir / "faiss").write_text("not a folder")


def stale_temp_files(data_dir: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    index = faiss_file(data_dir)
    (index.parent / f"{index.name}.{dead.stdout.strip()}.abcd1234.tmp").write_bytes(b"half a write")
    old = index.parent / "default-legacy.faissxyz.tmp"
    old.write_bytes(b"from before")
    os.utime(old, (time.time() - 7200, time.time() - 7200))


def db(data_dir: Path) -> Path:
    return data_dir / "newsquote.db"


def faiss_file(data_dir: Path) -> Path:
    return next((data_dir / "faiss").glob("*.faiss"))


def sidecar(data_dir: Path) -> Path:
    return faiss_file(data_dir).with_suffix(".json")


def cases(pristine: Path, flips: int, rng: random.Random) -> list[Case]:
    out: list[Case] = []
    db_size = db(pristine).stat().st_size
    faiss_size = faiss_file(pristine).stat().st_size
    meta_size = sidecar(pristine).stat().st_size
    page = int.from_bytes(db(pristine).read_bytes()[16:18], "big")

    header = sorted({*range(16, 24), 28, 29, 30, 31, 44, 47, 56, 59, *rng.sample(range(100), 12)})
    for offset in header:
        out.append(Case("sqlite header flip", f"byte {offset} ^0xff", flip(db, offset, 0xFF)))
    for offset in sorted(rng.sample(range(100, db_size), flips)):
        out.append(Case("sqlite flip", f"byte {offset}", flip(db, offset, rng.randrange(1, 256))))
    for size in (100, page, db_size // 2, db_size - page, db_size - 1):
        out.append(Case("sqlite truncation", f"to {size} bytes", truncate(db, size)))
    out.append(Case("swap", "newsquote.db is a folder", to_folder(db)))

    # FAISS IndexIDMap2 ends with the id list: its length (8 bytes), then one int64 per vector.
    count = json.loads(sidecar(pristine).read_text())["count"]
    id_list = faiss_size - 8 * count - 8
    special = [id_list, id_list + 1, id_list + 7, faiss_size - 1, 0, 4, 8, 16]
    for offset in special:
        out.append(Case("faiss flip", f"byte {offset} ^0xff (structure)", flip(faiss_file, offset, 0xFF)))
    for offset in sorted(rng.sample(range(faiss_size), flips)):
        out.append(Case("faiss flip", f"byte {offset}", flip(faiss_file, offset, rng.randrange(1, 256))))
    for size in (0, 8, faiss_size // 2, faiss_size - 8, faiss_size - 1):
        out.append(Case("faiss truncation", f"to {size} bytes", truncate(faiss_file, size)))

    for offset in sorted(rng.sample(range(meta_size), min(20, meta_size))):
        out.append(Case("sidecar flip", f"byte {offset}", flip(sidecar, offset, rng.randrange(1, 128))))
    for text in ("null", "[]", "{}", '"text"', "3", "true", "", "{not json", '{"version": 1}'):
        out.append(Case("sidecar wrong type", f"sidecar is {text!r}", write(sidecar, text)))
    as_string = edit_meta(lambda m: {**m, "version": str(m["version"])})
    out.append(Case("sidecar wrong type", "version is a string", as_string))
    out.append(Case("sidecar wrong type", "version is true", edit_meta(lambda m: {**m, "version": True})))
    out.append(Case("sidecar wrong type", "count is a list", edit_meta(lambda m: {**m, "count": [m["count"]]})))
    out.append(Case("sidecar wrong type", "checksum is null", edit_meta(lambda m: {**m, "blake2b": None})))
    out.append(Case("sidecar wrong type", "checksum of other bytes", edit_meta(lambda m: {**m, "blake2b": "0" * 64})))

    out.append(Case("swap", "index file is an empty folder", to_folder(faiss_file)))
    out.append(Case("swap", "index file is a folder with a file", to_folder(faiss_file, with_file=True)))
    out.append(Case("swap", "sidecar is a folder", to_folder(sidecar)))
    out.append(Case("swap", "faiss/ is a file", faiss_dir_to_file))
    out.append(Case("swap", "stale temporary files", stale_temp_files))
    out.extend(Case("control", f"no damage {n}", lambda _: None) for n in range(3))
    return out


# --- running and classifying --------------------------------------------------------------------


def classify(code: int, results: list[dict], reference: list[object]) -> tuple[str, bool]:
    """Return the case's outcome and whether a command that reported damage changed the database file."""
    if code != 0 or len(results) != len(commands()):
        return ("crash" if code < 0 else "traceback"), False
    if any(r["traceback"] or "Traceback" in r["stderr"] for r in results):
        return "traceback", False
    damaged = any("is damaged" in r["stderr"] and r["db_changed"] for r in results)
    errors = [r for r in results if r["code"] != 0]
    for r in errors:
        lines = [line for line in r["stderr"].splitlines() if line.strip()]
        if not lines or not lines[-1].startswith("error: ") or sum(x.startswith("error: ") for x in lines) != 1:
            return "traceback", damaged  # not one clear line
    seen = answers(results)
    if any(s is not None and s != ref for s, ref in zip(seen, reference, strict=True)):
        return "wrong", damaged
    add = results[-1]
    if add["code"] == 0 and "added #" not in add["stdout"] and "already stored" not in add["stdout"]:
        return "wrong", damaged
    if errors:
        return "error", damaged
    if any("rebuilding it from the database" in r["stderr"] or "in the way" in r["stderr"] for r in results):
        return "rebuilt", damaged
    return "ok", damaged


def run_case(case: Case, pristine: Path, reference: list[object], scratch: Path, n: int) -> dict:
    copy = scratch / f"case{n}" / "data"
    shutil.copytree(pristine, copy)
    case.damage(copy)
    began = time.perf_counter()
    code, results, stderr = run_script(copy, commands())
    outcome, damaged = classify(code, results, reference)
    modified = damaged
    first_error = next((r["stderr"].strip().splitlines()[-1] for r in results if r["code"] != 0), "")
    first_error = first_error.replace(str(copy), "DATA")
    if outcome in ("traceback", "crash") and not first_error:
        first_error = (stderr.strip().splitlines() or [""])[-1]
    shutil.rmtree(copy.parent)
    return {
        "kind": case.kind,
        "name": case.name,
        "outcome": outcome,
        "modified": modified,
        "message": first_error[:300],
        "seconds": round(time.perf_counter() - began, 2),
    }


def build(pristine: Path) -> list[object]:
    files = []
    for n, text in enumerate([PHONE_CALL, BAKERY_STRIKE, LIBRARY_HOURS, STADIUM_VOTE]):
        path = pristine.parent / f"article{n}.txt"
        path.write_text(text, encoding="utf-8")
        files.append(str(path))
    code, results, stderr = run_script(pristine, [["add", *files]])
    if code != 0 or results[0]["code"] != 0:
        sys.exit(f"could not build the library: {stderr or results}")
    code, results, stderr = run_script(pristine, commands()[:-1])
    if code != 0 or any(r["code"] != 0 for r in results):
        sys.exit(f"could not ask the library: {stderr or results}")
    return answers(results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flips", type=int, default=80, help="random single-byte flips per file (default 80)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--verbose", action="store_true", help="print every case")
    parser.add_argument("--only", help="run only the kinds of damage whose name contains this")
    parser.add_argument("--json", type=Path, help="also write every case's result to this file")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="newsquote-corruption-") as tmp:
        scratch = Path(tmp)
        global FAKE_CLI  # noqa: PLW0603
        FAKE_CLI = freeze_code(scratch)
        pristine = scratch / "pristine" / "data"
        pristine.parent.mkdir()
        reference = build(pristine)
        todo = [c for c in cases(pristine, args.flips, rng) if not args.only or args.only in c.kind]
        began = time.perf_counter()
        with ThreadPoolExecutor(args.workers) as pool:
            rows = list(pool.map(lambda nc: run_case(nc[1], pristine, reference, scratch, nc[0]), enumerate(todo)))
    elapsed = time.perf_counter() - began

    table: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        table[row["kind"]][row["outcome"]] += 1
        table[row["kind"]]["modified"] += row["modified"]
        if args.verbose or row["outcome"] in ("traceback", "wrong", "crash") or row["modified"]:
            print(f"{row['kind']:<20} {row['name']:<36} {row['outcome']:<9} {row['message']}")
    columns = [*OUTCOMES, "modified"]
    print(f"\n{'damage':<20} {'cases':>5} " + " ".join(f"{c:>9}" for c in columns))
    total: Counter[str] = Counter()
    for kind, counts in table.items():
        n = sum(counts[c] for c in OUTCOMES)
        total.update(counts)
        print(f"{kind:<20} {n:>5} " + " ".join(f"{counts[c]:>9}" for c in columns))
    print(f"{'total':<20} {len(rows):>5} " + " ".join(f"{total[c]:>9}" for c in columns))
    print(f"\n{len(rows)} cases in {elapsed:.0f} s; target: 0 traceback, 0 wrong, 0 crash, 0 modified")
    messages = Counter(r["message"].split(" (")[0] for r in rows if r["outcome"] == "error")
    for message, n in messages.most_common(5):
        print(f"  {n:>3} x {message[:110]}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    bad = total["traceback"] + total["wrong"] + total["crash"] + total["modified"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
