"""The command line (``python -m index``) with the deterministic fake embedder of ``tests/fakes/``.

The benchmarks run thousands of commands; the fake embedder makes each cost milliseconds instead of loading a
model, and nothing they measure depends on the model's numbers.

    python benchmarks/fake_cli.py ARGS...          one command, exactly as ``python -m index ARGS``
    python benchmarks/fake_cli.py --script FILE    several commands in this one process: FILE holds a JSON list
                                                  of argument lists; prints a JSON list of {argv, code, stdout,
                                                  stderr, traceback, db_changed}: an uncaught exception is
                                                  reported as the traceback it would have printed, db_changed
                                                  says whether the command changed the SQLite file's bytes
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import index.__main__ as cli  # noqa: E402
from index.service import Engine  # noqa: E402
from index.settings import Settings  # noqa: E402
from tests.fakes.embedder import HashEmbedder  # noqa: E402


def fake_engine(settings: Settings) -> Engine:
    return Engine(settings, embedder=HashEmbedder())


def _db_digest(argv: list[str]) -> str | None:
    data_dir = Path(argv[argv.index("--data-dir") + 1]) if "--data-dir" in argv else Path("data")
    db = data_dir / "newsquote.db"
    return hashlib.sha256(db.read_bytes()).hexdigest() if db.is_file() else None


def run(argv: list[str]) -> dict[str, object]:
    """Run one command as ``python -m index`` would, capturing what it prints."""
    before = _db_digest(argv)
    out, err = io.StringIO(), io.StringIO()
    crashed = False
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code, crashed = 1, True
    return {
        "argv": argv,
        "code": code,
        "stdout": out.getvalue(),
        "stderr": err.getvalue(),
        "traceback": crashed,
        "db_changed": _db_digest(argv) != before,
    }


def main() -> int:
    cli.Engine = fake_engine  # type: ignore[attr-defined]
    if sys.argv[1:2] == ["--script"]:
        commands = json.loads(Path(sys.argv[2]).read_text())
        print(json.dumps([run(argv) for argv in commands]))
        return 0
    return cli.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
