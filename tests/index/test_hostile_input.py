"""Hostile input: pathological Markdown and giant paragraphs in linear time, binary files refused, any text
encoding read, a slow server cut off at one deadline, and sentence splitting that threads cannot mix up."""

from __future__ import annotations

import codecs
import contextlib
import gzip
import io
import itertools
import random
import struct
import sys
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from index import chunking, sources
from index.chunking import fit_sentences, split_sentences
from index.errors import FetchError, NewsQuoteError, TooLargeError, UnsupportedContentError
from index.models import Span
from index.service import Engine
from index.settings import Settings
from index.sources import clean_text, from_bytes, from_file, from_url
from tests.fakes.embedder import HashEmbedder
from tests.index.articles import ALL_ARTICLES, LIBRARY_HOURS, PHONE_CALL
from tests.index.local_server import LocalServer, redirect, respond

SIZE = 200_000
BUDGET_SECONDS = 2.0  # the quadratic cleaning took 24 s at 96 KB

PATHOLOGICAL_MARKDOWN: dict[str, Callable[[int], str]] = {
    "star-words": lambda n: "*a " * (n // 3),
    "underscore-words": lambda n: "_a " * (n // 3),
    "stars": lambda n: "*" * n,
    "underscores": lambda n: "_" * n,
    "open-brackets": lambda n: "[" * n,
    "nested-brackets": lambda n: "[" * (n // 2) + "]" * (n // 2),
    "unclosed-links": lambda n: "[a](" * (n // 4),
    "image-openers": lambda n: "![" * (n // 2),
    "unclosed-images": lambda n: "![a](" * (n // 5),
    "backticks": lambda n: "`" * n,
    "backtick-runs": lambda n: "".join("`" * (i % 7 + 1) + "a" for i in range(n // 5)),
    "mixed-markup": lambda n: "*_[`!<" * (n // 6),
    "deep-quote": lambda n: ">" * n,
    "escapes": lambda n: "\\" * n,
    "no-punctuation": lambda n: "word " * (n // 5),
}


@contextmanager
def within(seconds: float, clock: Callable[[], float] = time.perf_counter, unit: str = "s") -> Iterator[None]:
    started = clock()
    yield
    spent = clock() - started
    assert spent < seconds, f"took {spent:.2f} {unit}, budget {seconds} s"


def within_cpu(seconds: float) -> AbstractContextManager[None]:
    """Work done on this thread, in CPU seconds: a quadratic parse shows, other processes' load does not."""
    return within(seconds, time.thread_time, "s of CPU")


# --- 1. linear time ------------------------------------------------------------------------------


@pytest.mark.parametrize("make", PATHOLOGICAL_MARKDOWN.values(), ids=PATHOLOGICAL_MARKDOWN.keys())
def test_pathological_markdown_is_read_in_linear_time(make: Callable[[int], str], settings: Settings) -> None:
    data = make(SIZE).encode()
    # Refusing is fine (nothing readable, too long); taking forever is not.
    with within_cpu(BUDGET_SECONDS), contextlib.suppress(NewsQuoteError):
        from_bytes(data, "x.md", settings)


@pytest.mark.parametrize("make", PATHOLOGICAL_MARKDOWN.values(), ids=PATHOLOGICAL_MARKDOWN.keys())
def test_pathological_lines_are_split_in_linear_time(make: Callable[[int], str]) -> None:
    text = make(SIZE)
    with within_cpu(BUDGET_SECONDS):
        spans = split_sentences(text)
    assert sum(len("".join(text[s.start : s.end].split())) for s in spans) == len("".join(text.split()))


def test_a_text_far_too_long_to_be_an_article_is_refused_before_cleaning(settings: Settings) -> None:
    data = ("*a " * (settings.max_download_bytes // 3)).encode()
    with within_cpu(1.0), pytest.raises(TooLargeError, match="characters: an article may have 300,000 once cleaned"):
        from_bytes(data, "x.md", settings)


def _paragraph(sentences: int) -> tuple[str, list[str]]:
    rng = random.Random(7)
    words = ["the", "council", "said", "on", "Monday", "that", "Mr.", "Smith", "of", "the", "U.S.", "would", "vote"]
    said = [f"Sentence {i} says {' '.join(rng.choices(words, k=rng.randint(4, 30)))} today." for i in range(sentences)]
    return " ".join(said), said


def test_one_huge_paragraph_is_split_in_linear_time() -> None:
    text, _ = _paragraph(1_200)  # about 120,000 characters on one line: 15 s when read whole
    assert len(text) > 100_000
    with within_cpu(5.0):
        split_sentences(text)


def test_a_long_paragraph_is_split_into_the_same_sentences_as_short_ones() -> None:
    text, said = _paragraph(200)
    assert len(text) > 10 * chunking.MAX_PIECE_CHARS
    assert [text[s.start : s.end] for s in split_sentences(text)] == said


def test_a_long_line_without_spaces_is_cut_into_pieces() -> None:
    text = "x" * (5 * chunking.MAX_PIECE_CHARS + 17)
    spans = split_sentences(text)
    assert spans[0].start == 0
    assert spans[-1].end == len(text)
    assert all(a.end == b.start for a, b in itertools.pairwise(spans))


PIECED = hypothesis_settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LONG_LINES = st.lists(
    st.sampled_from(["Mr.", "Smith", "said", "U.S.", "no.", "5.5", "“yes”", "(aside).", "end.", "Why?", "x" * 30]),
    min_size=1,
    max_size=80,
).map(" ".join)


@PIECED
@given(text=st.one_of(LONG_LINES, st.text(max_size=400)))
def test_pieces_of_long_lines_still_cover_every_character_once(text: str) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(chunking, "MAX_PIECE_CHARS", 24)  # every line of a few words is read in pieces
        spans = split_sentences(text)
    covered = [0] * len(text)
    for span in spans:
        piece = text[span.start : span.end]
        assert piece
        assert piece == piece.strip()
        for i in range(span.start, span.end):
            covered[i] += 1
    assert all(count == 1 or (count == 0 and char.isspace()) for count, char in zip(covered, text, strict=True))
    assert all(a.end <= b.start for a, b in itertools.pairwise(spans))


# --- 4. one sentence splitter per thread ---------------------------------------------------------


def test_threads_splitting_at_once_get_the_same_sentences_as_one_thread() -> None:
    texts = [" ".join([article.replace("\n", " ")] * (3 + i)) for i, article in enumerate(ALL_ARTICLES * 2)][:8]
    expected = [split_sentences(text) for text in texts]
    start = threading.Barrier(len(texts))
    found: dict[int, list[list[Span]]] = {}

    def split(i: int) -> None:
        start.wait()
        found[i] = [split_sentences(texts[i]) for _ in range(3)]

    workers = [threading.Thread(target=split, args=(i,)) for i in range(len(texts))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for i, text in enumerate(texts):
        assert found[i] == [expected[i]] * 3, f"text {i} ({len(text)} characters) was split differently"


def test_concurrent_adds_store_the_sentences_of_a_single_threaded_split(settings: Settings) -> None:
    embedder = HashEmbedder()
    engine = Engine(settings, embedder=embedder)
    body = " ".join([PHONE_CALL.split("\n\n", 1)[1]] * 2)
    texts = [f"Report {i}\n\n{body} Filed as number {i}." for i in range(6)]
    start = threading.Barrier(len(texts))
    added: dict[int, int] = {}

    def add(i: int) -> None:
        start.wait()
        added[i] = engine.add_text(texts[i], title=f"Report {i}").article.id

    try:
        workers = [threading.Thread(target=add, args=(i,)) for i in range(len(texts))]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        limit = min(settings.chunk_tokens, embedder.max_tokens)
        for article_id in added.values():
            text = engine.store.article_text(article_id)
            expected, _ = fit_sentences(text, split_sentences(text), embedder.count_tokens, limit)
            stored = [Span(row.start, row.end) for row in engine.store.sentences(article_id, 0, len(text))]
            assert stored == expected
    finally:
        engine.close()
    assert len(added) == len(texts)


# --- 3. binary files -----------------------------------------------------------------------------


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pixels = zlib.compress(b"\x00\xff\x00\x00" * 4)
    header = struct.pack(">IIBBBBB", 4, 1, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def _docx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", f"<w:document><w:body><w:p>{LIBRARY_HOURS}</w:p></w:body></w:document>")
    return buffer.getvalue()


PDF = (
    b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
    + LIBRARY_HOURS.encode()
    + b"\nxref\n0 1\n0000000000 65535 f \ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
)
BINARIES: dict[str, tuple[bytes, str]] = {
    "pdf": (PDF, "PDF"),
    "docx": (_docx(), "ZIP"),
    "gzip": (gzip.compress(LIBRARY_HOURS.encode()), "gzip"),
    "png": (_png(), "PNG"),
    "jpeg": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + bytes(range(256)) * 4, "JPEG"),
    "gif": (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,", "GIF"),
    "elf": (Path(sys.executable).read_bytes()[:200_000], "Linux program"),
    "random": (random.Random(3).randbytes(50_000), "binary file"),
    "nul-bytes": (LIBRARY_HOURS.encode() + b"\x00" + LIBRARY_HOURS.encode(), "binary file"),
    "control-characters": (bytes(range(1, 9)) * 200 + LIBRARY_HOURS.encode(), "binary file"),
}


@pytest.mark.parametrize("name", ["story.txt", "story.md", "story.html"])
@pytest.mark.parametrize(("data", "kind"), BINARIES.values(), ids=BINARIES.keys())
def test_binary_files_are_refused_before_parsing(data: bytes, kind: str, name: str, settings: Settings) -> None:
    with pytest.raises(UnsupportedContentError, match=kind) as refused:
        from_bytes(data, name, settings)
    assert ".html, .htm, .txt and .md" in str(refused.value)
    assert name in str(refused.value)


def test_a_pdf_renamed_txt_is_refused_as_a_pdf(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "report.txt"
    path.write_bytes(PDF)
    with pytest.raises(UnsupportedContentError, match=r"'report.txt' is a PDF document, not text"):
        from_file(path, settings)


def test_a_refused_binary_file_stores_nothing(engine: Engine) -> None:
    with pytest.raises(UnsupportedContentError):
        engine.add_bytes(BINARIES["elf"][0], "program.txt")
    assert engine.articles() == []


def test_a_binary_body_served_as_a_web_page_is_refused(server: LocalServer, open_settings: Settings) -> None:
    server.routes["/report"] = respond(PDF, content_type="text/html")
    with pytest.raises(UnsupportedContentError, match="is a PDF document, not text: only web pages"):
        from_url(server.url("/report"), open_settings)


@pytest.mark.parametrize(
    "text",
    [
        "MZ Wallace said the bags would be made in Ohio from next year, the company confirmed.",
        "ID3 tags are the labels inside music files, a standards body said on Friday in Geneva.",
        "The bell rang\x07 twice before the vote, the clerk said, and members filed back in.",
    ],
    ids=["starts-like-a-windows-program", "starts-like-an-mp3", "a-stray-control-character"],
)
def test_text_that_merely_resembles_binary_is_read(text: str, settings: Settings) -> None:
    assert "the" in from_bytes(text.encode(), "story.txt", settings).text


# --- 11. encodings and invisible characters ------------------------------------------------------

STORY = "Le maire a déclaré que le pont « rouvrira en mars », après deux ans de travaux — 5 € de péage."


@pytest.mark.parametrize(
    "encoded",
    [
        codecs.BOM_UTF8 + STORY.encode(),
        codecs.BOM_UTF16_LE + STORY.encode("utf-16-le"),
        codecs.BOM_UTF16_BE + STORY.encode("utf-16-be"),
        STORY.encode("utf-32"),
        STORY.encode("utf-16-le"),
        STORY.encode("utf-16-be"),
        STORY.encode("utf-8"),
        STORY.encode("cp1252"),
    ],
    ids=["utf-8-bom", "utf-16-le-bom", "utf-16-be-bom", "utf-32-bom", "utf-16-le", "utf-16-be", "utf-8", "cp1252"],
)
def test_text_files_are_decoded_in_their_own_encoding(encoded: bytes, settings: Settings) -> None:
    assert from_bytes(encoded, "story.txt", settings).text == STORY


@pytest.mark.parametrize(
    ("encoding", "text"),
    [
        ("cp1251", "Мэр заявил в пятницу, что новая библиотека откроется в марте после ремонта."),
        ("shift_jis", "市長は金曜日、改修後の新しい図書館を三月に開館すると述べた。利用者は歓迎している。"),
        ("latin-1", "Die Bürgermeisterin sagte, die Straße werde im März für den Verkehr geöffnet."),
    ],
)
def test_text_without_a_byte_order_mark_or_utf8_is_decoded_by_guessing(
    encoding: str, text: str, settings: Settings
) -> None:
    assert from_bytes(text.encode(encoding), "story.txt", settings).text == text


def test_a_utf16_file_with_a_bom_gets_its_first_line_as_title(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "mayor.txt"
    path.write_bytes(codecs.BOM_UTF16_LE + LIBRARY_HOURS.encode("utf-16-le"))
    article = from_file(path, settings)
    assert article.title == LIBRARY_HOURS.splitlines()[0]
    assert "\x00" not in article.text


def test_a_utf16_page_is_decoded_by_its_bom(server: LocalServer, open_settings: Settings) -> None:
    server.routes["/story"] = respond(codecs.BOM_UTF16_LE + STORY.encode("utf-16-le"), content_type="text/plain")
    assert from_url(server.url("/story"), open_settings).text == STORY


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("The vote was \u202eecnarf\u202c close.", "The vote was ecnarf close."),
        ("\u2066isolated\u2069 and \u2067right\u2069 and \u2068first\u2069", "isolated and right and first"),
        ("embedded\u202a left\u202b right\u202d over\u202c", "embedded left right over"),
        ("hidden\U000e0041\U000e0042 tags", "hidden tags"),
        ("arabic\u061c mark and c1\x85\x9b controls", "arabic mark and c1 controls"),
        ("bytes read with surrogateescape\udcd0\udcff and JSON's \ud800", "bytes read with surrogateescape and JSON's"),
    ],
    ids=["right-to-left-override", "isolates", "embeddings", "tag-characters", "other-invisibles", "lone-surrogates"],
)
def test_invisible_formatting_characters_are_stripped(raw: str, cleaned: str) -> None:
    assert clean_text(raw) == cleaned


# --- 2. one deadline for a whole fetch -----------------------------------------------------------

DRIP_SECONDS = 0.3


def _drip_body(server: LocalServer, length: bool) -> Callable[[BaseHTTPRequestHandler], None]:
    def handle(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        if length:
            handler.send_header("Content-Length", "100000")
        handler.end_headers()
        while not server.release.wait(DRIP_SECONDS):
            handler.wfile.write(b"a")

    return handle


def _drip_headers(server: LocalServer) -> Callable[[BaseHTTPRequestHandler], None]:
    def handle(handler: BaseHTTPRequestHandler) -> None:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
        while not server.release.wait(DRIP_SECONDS):
            handler.wfile.write(b"X")

    return handle


@pytest.mark.parametrize(
    "route",
    [lambda s: _drip_body(s, length=True), lambda s: _drip_body(s, length=False), _drip_headers],
    ids=["body-with-length", "body-until-close", "headers"],
)
def test_a_server_dripping_bytes_is_cut_off_at_the_deadline(
    route: Callable[[LocalServer], Callable[[BaseHTTPRequestHandler], None]],
    server: LocalServer,
    open_settings: Settings,
) -> None:
    server.routes["/drip"] = route(server)
    with within(1.5), pytest.raises(FetchError, match=r"Timed out after 1 s fetching"):
        from_url(server.url("/drip"), open_settings.model_copy(update={"fetch_timeout": 1.0}))


def test_the_deadline_covers_every_redirect(server: LocalServer, open_settings: Settings) -> None:
    def slow_hop(to: str) -> Callable[[BaseHTTPRequestHandler], None]:
        def handle(handler: BaseHTTPRequestHandler) -> None:
            server.release.wait(0.4)
            redirect(to)(handler)

        return handle

    for hop in range(5):
        server.routes[f"/hop{hop}"] = slow_hop(f"/hop{hop + 1}")
    server.routes["/hop5"] = respond(LIBRARY_HOURS, content_type="text/plain")
    with within(1.5), pytest.raises(FetchError, match="Timed out"):
        from_url(server.url("/hop0"), open_settings.model_copy(update={"fetch_timeout": 1.0}))


def test_the_deadline_covers_a_slow_name_lookup(
    server: LocalServer, open_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_resolve = sources.resolve

    def slow_resolve(host: str, port: int, allow_private: bool) -> str:
        time.sleep(3)
        return real_resolve(host, port, allow_private)

    monkeypatch.setattr(sources, "resolve", slow_resolve)
    with within(1.5), pytest.raises(FetchError, match="Timed out"):
        from_url(server.url("/story"), open_settings.model_copy(update={"fetch_timeout": 1.0}))


def test_a_page_that_arrives_in_time_is_read_whole(server: LocalServer, open_settings: Settings) -> None:
    def steady(handler: BaseHTTPRequestHandler) -> None:
        data = LIBRARY_HOURS.encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        step = len(data) // 4 + 1
        for start in range(0, len(data), step):
            server.release.wait(0.1)
            handler.wfile.write(data[start : start + step])

    server.routes["/steady"] = steady
    article = from_url(server.url("/steady"), open_settings.model_copy(update={"fetch_timeout": 2.0}))
    assert article.text.endswith(LIBRARY_HOURS.rstrip().rsplit("\n", 1)[-1])
