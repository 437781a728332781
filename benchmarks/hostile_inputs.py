"""The hostile-input table: each input a hostile user could send, the time it takes and what comes of it.

    python -m benchmarks.hostile_inputs [--markdown-repeats 32000]

Files go through what ``add`` does before the model: reading, decoding, cleaning (``sources.from_bytes``) and
sentence splitting (``chunking.split_sentences``); the model's time is not what is measured. URLs are fetched
from servers on 127.0.0.1 (private hosts allowed for the run) with ``NEWSQUOTE_FETCH_TIMEOUT=2``. The huge id
runs ``python -m index remove`` on an empty data directory. Pathological Markdown is read at 1x, 2x and 4x
its size, and at the 5 MB upload cap, to show that the time grows linearly. HTML goes through trafilatura,
whose time grows with the number of elements.
"""

from __future__ import annotations

import argparse
import codecs
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from index import sources
from index.chunking import split_sentences
from index.errors import NewsQuoteError
from index.models import ExtractedArticle
from index.settings import Settings
from tests.index.local_server import LocalServer, redirect, running_server

FETCH_TIMEOUT = 2.0
DRIP_SECONDS = 1.5  # the reproduction: one byte every 1.5 s against a 2 s timeout
HUGE_ID = "1180591620717411303424"  # 2**70: past SQLite's integers
STORY = (
    "The mayor said on Tuesday that the Kestrel Bay bridge would reopen in March, after two years of repairs "
    "that ran over budget. “We owe the town an apology for the delay,” she told the council."
)


@dataclass(frozen=True)
class Row:
    name: str
    size: str
    seconds: float
    outcome: str


def _kb(data: bytes | str) -> str:
    return f"{len(data) / 1000:,.0f} KB" if len(data) >= 1000 else f"{len(data)} B"


def _read(data: bytes, filename: str, settings: Settings) -> str:
    """Read a file as ``add`` does before embedding it; describe what came of it."""
    article: ExtractedArticle = sources.from_bytes(data, filename, settings)
    sentences = split_sentences(article.text)
    return f"read: {len(article.text):,} characters, {len(sentences):,} sentences, title “{article.title[:40]}”"


def _timed(name: str, size: str, run: Callable[[], str]) -> Row:
    started = time.perf_counter()
    try:
        outcome = run()
    except NewsQuoteError as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    return Row(name, size, time.perf_counter() - started, outcome)


def _pdf() -> bytes:
    return (
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
        + STORY.encode()
        + b"\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
    )


def _paragraph(chars: int) -> str:
    """One line of news-like prose, about ``chars`` long, with abbreviations, numbers and quotes."""
    sentences = [
        "Mr. Szymborski met U.S. officials at 3 p.m. on Jan. 5 to discuss the port's 3.5% levy.",
        "“The call happened,” she said, “and I made a note of it the same night.”",
        "The ministry, e.g. its permanent secretary, said no such call took place that week.",
        "Officials declined to say whether the records would be released before Friday.",
    ]
    text: list[str] = []
    length = 0
    while length < chars:
        text.append(sentences[len(text) % len(sentences)].replace("the", f"the {len(text)}", 1))
        length += len(text[-1]) + 1
    return " ".join(text)[:chars].rsplit(" ", 1)[0] + "."


def file_rows(settings: Settings, repeats: int) -> list[Row]:
    ls = Path("/usr/bin/ls").read_bytes()
    utf16 = codecs.BOM_UTF16_LE + ("The mayor and the bridge\n\n" + STORY).encode("utf-16-le")
    rows = [
        _timed("binary file (/usr/bin/ls as program.txt)", _kb(ls), lambda: _read(ls, "program.txt", settings)),
        _timed("PDF renamed report.txt", _kb(_pdf()), lambda: _read(_pdf(), "report.txt", settings)),
        _timed("UTF-16 file with BOM", _kb(utf16), lambda: _read(utf16, "mayor.txt", settings)),
    ]
    files: list[tuple[str, bytes, str]] = []
    for pattern in ("*a ", "!["):
        for times in (1, 2, 4):
            data = (pattern * (repeats * times)).encode()
            files.append((f"Markdown '{pattern}' × {repeats * times:,}", data, "x.md"))
    cap = ("*a " * (settings.max_download_bytes // 3 + 1)).encode()[: settings.max_download_bytes]
    files += [
        ("Markdown '*a ' at the upload cap", cap, "x.md"),
        ("one paragraph of 300,000 characters", _paragraph(300_000).encode(), "p.txt"),
        ("300,000 characters, no punctuation", ("word " * 60_000).encode(), "w.txt"),
        ("HTML, 50,000 one-word paragraphs", ("<p>a " * 50_000).encode(), "p.html"),
    ]
    for name, data, filename in files:
        rows.append(_timed(name, _kb(data), partial(_read, data, filename, settings)))
    return rows


def _drip(server: LocalServer) -> Callable[[BaseHTTPRequestHandler], None]:
    def handle(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        handler.end_headers()
        while not server.release.wait(DRIP_SECONDS):
            handler.wfile.write(b"a")

    return handle


def url_rows(settings: Settings) -> list[Row]:
    with running_server() as server:
        server.routes["/drip"] = _drip(server)
        server.routes["/loop"] = redirect("/loop")

        def fetch(path: str) -> str:
            article = sources.from_url(server.url(path), settings)
            return f"read: {len(article.text):,} characters"

        return [
            _timed(f"server sending 1 byte every {DRIP_SECONDS:g} s", "-", lambda: fetch("/drip")),
            _timed("server redirecting to itself", "-", lambda: fetch("/loop")),
        ]


def huge_id_row() -> Row:
    with tempfile.TemporaryDirectory() as root:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSQUOTE_")}
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "index", "remove", HUGE_ID, "--data-dir", str(Path(root) / "data")],
            capture_output=True,
            text=True,
            env=env,
            cwd=root,
            timeout=300,
            check=False,
        )
        seconds = time.perf_counter() - started
    said = (done.stderr.strip() or done.stdout.strip()).splitlines()
    traceback = "Traceback" in done.stderr
    shown = said[-1] if traceback else (said[0] if said else "")
    outcome = f"exit {done.returncode}{' with a traceback' if traceback else ''}: {shown}"
    return Row(f"python -m index remove {HUGE_ID}", "-", seconds, outcome)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown-repeats", type=int, default=32_000, help="repeats of each Markdown pattern at 1x")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as root:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None, data_dir=Path(root) / "data", allow_private_hosts=True, fetch_timeout=FETCH_TIMEOUT
        )
        rows = [*file_rows(settings, args.markdown_repeats), *url_rows(settings), huge_id_row()]
    print("| Input | Size | Time | Outcome |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row.name} | {row.size} | {row.seconds:.2f} s | {row.outcome.replace('|', '/')} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
