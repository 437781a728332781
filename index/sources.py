"""Getting article text in: URLs (fetched safely), HTML, plain text and Markdown, cleaned the same way."""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import itertools
import re
import socket
import threading
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from index import markdown
from index.decoding import binary_kind, decode
from index.errors import (
    BlockedAddressError,
    FetchError,
    NoTextError,
    TooLargeError,
    UnsupportedContentError,
)
from index.models import ExtractedArticle
from index.settings import Settings

if TYPE_CHECKING:
    import httpx

HTML_TYPES = {"text/html", "application/xhtml+xml"}
TEXT_TYPES = {"text/plain", "text/markdown", "text/x-markdown"}
# RSS and Atom, under their own types and the generic XML ones many servers use for them.
FEED_TYPES = {"application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/xml", "text/xml"}
PAGE_ACCEPT = "text/html,text/plain;q=0.9,*/*;q=0.1"
FEED_ACCEPT = "application/rss+xml,application/atom+xml,application/xml;q=0.9,text/xml;q=0.9,*/*;q=0.1"
FILE_KINDS = {".html": "html", ".htm": "html", ".txt": "text", ".md": "markdown", ".markdown": "markdown"}
TRACKING_PARAMS = re.compile(r"^(utm_\w+|fbclid|gclid|mc_cid|mc_eid|ref|ref_src|cmpid|ocid|smid|igshid)$", re.I)
MIN_TEXT_CHARS = 40
MAX_TITLE_CHARS = 200  # Discord allows 256 in an embed title
MAX_HTML_TAGS = 60_000
MAX_HEADLINE_CHARS = 150  # a longer first line is a paragraph, not a headline
MAX_SENTENCE_TITLE_CHARS = 100  # a title made from the first sentence is a label, not a quote

# --- cleaning ------------------------------------------------------------------------------------

# Zero-width and bidirectional formatting characters (embeddings, overrides, isolates: they can make a quote
# read backwards), invisible operators, tag characters (text hidden from readers), C0/C1 controls, and lone
# surrogates (undecodable bytes read with "surrogateescape", or a JSON "\ud800"), which cannot even be stored.
_INVISIBLE = re.compile(
    "[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\u061c\u180e\u2028\u2029\ufeff\u00ad\ufff9-\ufffb]"
    "|[\U000e0000-\U000e007f]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]|[\ud800-\udfff]"
)
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")


def clean_text(text: str) -> str:
    """Normalize Unicode and whitespace: one space between words, one blank line between paragraphs."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _INVISIBLE.sub("", text)
    paragraphs: list[str] = []
    for block in re.split(r"\n[ \t\u00a0]*\n", text):
        lines = [_SPACES.sub(" ", line).strip() for line in block.split("\n")]
        lines = [line for line in lines if line]
        if not lines:
            continue
        paragraph = lines[0]
        for previous, line in itertools.pairwise(lines):
            paragraph += " " if _continues(previous, line, len(lines)) else "\n"
            paragraph += line
        paragraphs.append(paragraph)
    return "\n\n".join(paragraphs)


def _continues(previous: str, line: str, lines: int) -> bool:
    """Whether ``line`` continues the sentence of ``previous`` (hard-wrapped prose) rather than starting anew.

    A line continues when the one before stops mid-sentence and either this one starts in lower case or the
    block looks wrapped at a fixed width (three or more long lines). A short headline followed by its story
    stays on its own line.
    """
    if previous.endswith((".", "!", "?", ":", '"', "”", "…")):
        return False
    return line[:1].islower() or (lines >= 3 and len(previous) >= 50)


def markdown_to_text(text: str) -> str:
    """Drop Markdown markup that would otherwise show up inside quotes, in time linear in the text."""
    return markdown.to_text(text)


def text_fingerprint(text: str) -> str:
    """A hash that ignores case and spacing, for spotting the same article added twice."""
    return hashlib.sha256(" ".join(text.casefold().split()).encode()).hexdigest()


def canonical_url(url: str) -> str:
    """Normalize a URL so trivially different spellings of one page compare equal."""
    parts = urlsplit(url.strip())
    if not parts.netloc:  # "example.com/story" has no scheme; read it as a web address
        parts = urlsplit("http://" + url.strip())
    host = (parts.hostname or "").lower().removeprefix("www.")
    port = parts.port
    netloc = host if port in (None, 80, 443) else f"{host}:{port}"
    query = urlencode(
        sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not TRACKING_PARAMS.match(k))
    )
    path = parts.path.rstrip("/") or "/"
    # http and https of the same page are the same article.
    return urlunsplit(("https", netloc, path, query, ""))


def title_from_text(text: str, filename: str | None = None) -> str:
    """Choose a title for text that came without one.

    The first line is the title when it reads like a headline: short, not a whole sentence or paragraph, and
    not page clutter. Otherwise the file's name, when it has words in it ("port-chief-call.txt"), and failing
    that the first sentence of the article, cut short.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = lines[0] if lines else ""
    if first and _reads_like_headline(first) and len(lines) > 1:
        return _shorten(first, MAX_TITLE_CHARS)
    named = _title_from_filename(filename)
    if named:
        return named
    if not first:
        return "Untitled"
    sentence = re.match(r"(.{20,}?[.!?])(?:\s|$)", first)
    return _shorten(sentence.group(1) if sentence else first, MAX_SENTENCE_TITLE_CHARS)


def _reads_like_headline(line: str) -> bool:
    if len(line) > MAX_HEADLINE_CHARS or len(line.split()) < 2:
        return False
    if line.endswith((".", ",", ";", ":")) or re.search(r"[.!?][\"”’']?\s+[A-Z“\"]", line):
        return False  # a sentence, or several: the start of the story, not its headline
    from index.cleaning import clean_boilerplate  # here: its patterns take a while to compile, and asking needs none

    return clean_boilerplate(line) == line


_GENERIC_NAMES = re.compile(r"^(?:article|story|text|paste|pasted|untitled|document|file|message|news|copy)\d*$", re.I)


def _title_from_filename(filename: str | None) -> str | None:
    if not filename:
        return None
    words = re.sub(r"[-_.+]+", " ", Path(filename).stem).split()
    letters = [w for w in words if re.fullmatch(r"[^\W\d_]{2,}", w)]
    if len(letters) < 2 or len(letters) < len(words) / 2 or _GENERIC_NAMES.match("".join(words)):
        return None
    title = " ".join(words)
    return _shorten(title[0].upper() + title[1:], MAX_SENTENCE_TITLE_CHARS)


def _shorten(text: str, limit: int) -> str:
    """Cut at a word boundary to at most ``limit`` characters, marking the cut with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:-–—") + "…"


def given_title(title: str | None) -> str:
    """A title someone typed, on one line and no longer than a title may be ("" when there is none)."""
    return _shorten(clean_text(title or "").replace("\n", " "), MAX_TITLE_CHARS)


def _finish(
    text: str, title: str | None, settings: Settings, filename: str | None = None, **meta: str | None
) -> ExtractedArticle:
    text = clean_text(text)
    if len(text) < MIN_TEXT_CHARS:
        raise NoTextError("No article text found: there is nothing to index (is it a page of links, or empty?).")
    if len(text) > settings.max_article_chars:
        raise TooLargeError(
            f"The article is {len(text):,} characters after cleaning; the limit is {settings.max_article_chars:,}."
        )
    chosen = given_title(title) or title_from_text(text, filename)
    return ExtractedArticle(text=text, title=chosen, **meta)  # type: ignore[arg-type]


# --- HTML, text and files ------------------------------------------------------------------------


def from_html(html: str | bytes, settings: Settings, url: str | None = None, source: str = "html") -> ExtractedArticle:
    """Extract the main text and metadata of a news page, leaving out navigation, captions and banners."""
    import trafilatura

    # Extraction costs about 0.2 ms an element: a page of a hundred thousand tags (ten times a busy news page)
    # would hold a worker for many seconds, so it is refused before parsing.
    tags = html.count(b"<") if isinstance(html, bytes) else html.count("<")
    if tags > MAX_HTML_TAGS:
        raise TooLargeError(f"That page has {tags:,} tags; pages of more than {MAX_HTML_TAGS:,} are not read.")

    doc = trafilatura.bare_extraction(
        html,
        url=url,
        with_metadata=True,
        include_comments=False,
        include_tables=False,
        include_images=False,
        favor_precision=True,
        deduplicate=False,  # its cache is process-wide: the same page added again would lose text
    )
    text = str(getattr(doc, "text", None) or "")
    if not text.strip():
        raise NoTextError("No article text found in that page: it may be a front page, a login wall or mostly script.")
    return _finish(
        text.replace("\n", "\n\n"),  # trafilatura puts one paragraph on each line: never rejoin them
        getattr(doc, "title", None),
        settings,
        url=url,
        byline=getattr(doc, "author", None) or None,
        published=getattr(doc, "date", None) or None,
        source=source,
    )


def from_text(
    text: str,
    settings: Settings,
    *,
    title: str | None = None,
    url: str | None = None,
    source: str = "text",
    filename: str | None = None,
) -> ExtractedArticle:
    """Take pasted text or a text file, without the clutter a copied news page carries (see ``cleaning``).

    The title defaults to the first line when it is a headline (see ``title_from_text``).
    """
    from index.cleaning import clean_boilerplate

    if source == "markdown":
        text = markdown_to_text(text)
    text = clean_boilerplate(clean_text(text))
    return _finish(text, title, settings, filename=filename, url=url, source=source)


# Cleaning removes markup and spacing, never most of a text: one over this many times the article limit is
# refused before it is read (a 5 MB Markdown file would take seconds to clean, only to be refused after).
MAX_TEXT_PER_ARTICLE_CHARS = 4


def _text(data: bytes, name: str, settings: Settings, charset: str | None = None) -> str:
    """Decode a text file or body, refusing one far too long to clean down to an article."""
    text = decode(data, charset)
    limit = settings.max_article_chars
    if len(text) > MAX_TEXT_PER_ARTICLE_CHARS * limit:
        raise TooLargeError(
            f"{name} has {len(text):,} characters: an article may have {limit:,} once cleaned, and cleaning "
            f"does not shorten a text {MAX_TEXT_PER_ARTICLE_CHARS} times."
        )
    return text


def refuse_binary(data: bytes, name: str, accepted: str) -> None:
    """Refuse a PDF, an image, a program or any other binary data before it reaches a parser."""
    kind = binary_kind(data)
    if kind:
        raise UnsupportedContentError(f"{name} is {kind}, not text: only {accepted} can be added.")


def from_bytes(
    data: bytes, filename: str, settings: Settings, title: str | None = None, source: str | None = None
) -> ExtractedArticle:
    """Read an uploaded or local file by its extension: .html/.htm, .txt or .md (``source`` renames a .txt's)."""
    kind = FILE_KINDS.get(Path(filename).suffix.lower())
    if kind is None:
        raise UnsupportedContentError(
            f"Unsupported file type '{Path(filename).suffix or filename}': use .html, .htm, .txt or .md."
        )
    if len(data) > settings.max_download_bytes:
        raise TooLargeError(f"The file is {len(data):,} bytes; the limit is {settings.max_download_bytes:,}.")
    refuse_binary(data, f"'{Path(filename).name}'", ".html, .htm, .txt and .md files")
    if kind == "html":
        article = from_html(data, settings, source="file")
        return (
            article
            if title is None
            else _finish(
                article.text, title, settings, byline=article.byline, published=article.published, source="file"
            )
        )
    text = _text(data, f"'{Path(filename).name}'", settings)
    kind_of_text = "markdown" if kind == "markdown" else source or "file"
    return from_text(text, settings, title=title, source=kind_of_text, filename=filename)


def from_file(path: Path, settings: Settings, title: str | None = None) -> ExtractedArticle:
    try:
        size = path.stat().st_size
        if size > settings.max_download_bytes:
            raise TooLargeError(f"{path.name} is {size:,} bytes; the limit is {settings.max_download_bytes:,}.")
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise NoTextError(f"No such file: {path}") from exc
    except IsADirectoryError as exc:
        raise UnsupportedContentError(f"{path} is a directory, not a file.") from exc
    except PermissionError as exc:
        raise NoTextError(f"Cannot read {path}: permission denied.") from exc
    return from_bytes(data, path.name, settings, title=title)


# --- URLs ----------------------------------------------------------------------------------------


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo, NAT64, IPv4-compatible), if any."""
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    if ip in _NAT64 or (int(ip) >> 32 == 0 and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def check_address(address: str) -> None:
    """Refuse addresses inside the host's own networks: loopback, private, link-local, metadata and so on."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address)
    inner = _embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
    for candidate in (ip, inner):
        if candidate is not None and (not candidate.is_global or candidate.is_multicast):
            raise BlockedAddressError(f"Refusing to fetch from {ip}: it is a private, loopback or reserved address.")


def resolve(host: str, port: int, allow_private: bool) -> str:
    """Resolve a host name and return the address to connect to, after checking every address it has."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"Cannot resolve host '{host}': check the URL.") from exc
    addresses = [str(info[4][0]) for info in infos]
    if not allow_private:
        for address in addresses:
            check_address(address.split("%")[0])
    return addresses[0]


class _Deadline:
    """One time budget for a whole fetch: DNS, connections, redirects, headers and body.

    httpx's timeouts apply to each connect and each read, so a server sending a byte at a time holds a fetch
    open for as long as it likes, its headers included (which no loop here sees arrive). Each step gets the
    time that is left, and at the deadline a timer shuts the sockets of the fetch, which ends any read
    blocked on them at once.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Self:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()

    def left(self, url: str) -> float:
        """Seconds left, or the timeout error when none are."""
        left = self.end - time.monotonic()
        if self.expired or left <= 0:
            raise self.error(url)
        return left

    def error(self, url: str) -> FetchError:
        return FetchError(f"Timed out after {self.seconds:g} s fetching {url}.")

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpx's trace hook: keep each new connection's socket (and its TLS socket) for the timer."""
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            sock = info["return_value"].get_extra_info("socket")
            with self._lock:
                self._sockets.append(sock)
                if self.expired:
                    _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    # The plain socket's shutdown, even on a TLS socket: it ends a blocked read without touching TLS state
    # that the reading thread is using. A socket already closed (or handed over to TLS) raises; nothing to do.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _resolve_in_time(host: str, port: int, allow_private: bool, deadline: _Deadline, url: str) -> str:
    """``resolve``, given up on at the deadline: the system resolver has no timeout of ours."""
    outcome: list[str | BaseException] = []

    def run() -> None:
        try:
            outcome.append(resolve(host, port, allow_private))
        except BaseException as exc:  # handed to the fetching thread, which raises it
            outcome.append(exc)

    worker = threading.Thread(target=run, name=f"resolve {host}", daemon=True)
    worker.start()
    worker.join(deadline.left(url))
    if not outcome:
        raise deadline.error(url)
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


@dataclass(frozen=True, slots=True)
class Fetched:
    """What a fetch brought back; ``not_modified`` when a conditional request was answered 304 (and no body)."""

    url: str
    content_type: str
    body: bytes
    charset: str | None
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False


def fetch_url(url: str, settings: Settings) -> tuple[str, str, bytes, str | None]:
    """Fetch a page, following redirects by hand so every hop is checked; return final URL, type, body, charset.

    The whole fetch, redirects included, takes at most ``settings.fetch_timeout`` seconds.
    """
    refusal = "not a web page or text: only HTML and plain text can be added"
    page = _fetch(url, settings, accept=PAGE_ACCEPT, types=HTML_TYPES | TEXT_TYPES, refusal=refusal)
    return page.url, page.content_type, page.body, page.charset


def fetch_feed(url: str, settings: Settings, etag: str | None = None, last_modified: str | None = None) -> Fetched:
    """Fetch an RSS or Atom document with every check a page gets; ``etag``/``last_modified`` make it conditional."""
    conditional = {k: v for k, v in (("If-None-Match", etag), ("If-Modified-Since", last_modified)) if v}
    refusal = "not an RSS or Atom feed"
    return _fetch(url, settings, accept=FEED_ACCEPT, types=FEED_TYPES, refusal=refusal, conditional=conditional)


def _fetch(
    url: str,
    settings: Settings,
    *,
    accept: str,
    types: set[str],
    refusal: str,
    conditional: dict[str, str] | None = None,
) -> Fetched:
    import httpx  # here: asking questions, the engine's busiest path, never fetches and need not load it

    current = url.strip()
    if "://" not in current:
        current = "https://" + current
    with (
        _Deadline(settings.fetch_timeout) as deadline,
        httpx.Client(follow_redirects=False, trust_env=False) as client,
    ):
        for _ in range(settings.max_redirects + 1):
            parts = urlsplit(current)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise FetchError(f"Not a web address: '{current}'. Give a full http:// or https:// URL.")
            port = parts.port or (443 if parts.scheme == "https" else 80)
            address = _resolve_in_time(parts.hostname, port, settings.allow_private_hosts, deadline, current)
            # Connect to the address that was checked, so a second DNS answer cannot redirect us inside.
            pinned = httpx.URL(current).copy_with(host=address)
            headers = {
                "Host": parts.netloc.rsplit("@", 1)[-1],
                "User-Agent": settings.user_agent,
                "Accept": accept,
                **(conditional or {}),
            }
            try:
                with client.stream(
                    "GET",
                    pinned,
                    headers=headers,
                    timeout=deadline.left(current),
                    extensions={"sni_hostname": parts.hostname, "trace": deadline.trace},
                ) as response:
                    if response.is_redirect and "location" in response.headers:
                        current = urljoin(current, response.headers["location"])
                        continue
                    if conditional and response.status_code == 304:
                        etag, modified = conditional.get("If-None-Match"), conditional.get("If-Modified-Since")
                        return Fetched(current, "", b"", None, etag, modified, not_modified=True)
                    kind, body, charset = _read_body(response, current, settings, deadline, types, refusal=refusal)
                    got = response.headers
                    return Fetched(current, kind, body, charset, got.get("etag"), got.get("last-modified"))
            except httpx.TimeoutException as exc:
                raise deadline.error(current) from exc
            except httpx.HTTPError as exc:
                if deadline.expired:  # the timer shut the connection under a read
                    raise deadline.error(current) from exc
                raise FetchError(f"Could not fetch {current}: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
    raise FetchError(f"Too many redirects (more than {settings.max_redirects}) from {url}.")


def _read_body(
    response: httpx.Response, url: str, settings: Settings, deadline: _Deadline, types: set[str], *, refusal: str
) -> tuple[str, bytes, str | None]:
    if response.status_code >= 400:
        raise FetchError(f"{url} answered HTTP {response.status_code} {response.reason_phrase}.".replace(" .", "."))
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower() or "text/html"
    if content_type not in types:
        raise UnsupportedContentError(f"{url} is {content_type}, {refusal}.")
    limit = settings.max_download_bytes
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLargeError(f"{url} is {int(declared):,} bytes; the limit is {limit:,}.")
    body = bytearray()
    for piece in response.iter_bytes():
        body += piece
        if len(body) > limit:
            raise TooLargeError(f"{url} is larger than the limit of {limit:,} bytes.")
        deadline.left(url)
    deadline.left(url)  # a body without a length ends when the connection does, as it does when the timer shuts it
    return content_type, bytes(body), response.charset_encoding


def from_url(url: str, settings: Settings) -> ExtractedArticle:
    final_url, content_type, body, charset = fetch_url(url, settings)
    refuse_binary(body, final_url, "web pages, plain text and Markdown")
    if content_type in HTML_TYPES:
        return from_html(body, settings, url=final_url, source="url")
    kind = "markdown" if "markdown" in content_type else "url"
    return from_text(_text(body, final_url, settings, charset), settings, url=final_url, source=kind)
