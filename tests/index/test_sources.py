"""Getting articles in: cleaning, URL safety, fetching from a real local server, HTML extraction, files."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from index import sources
from index.errors import (
    BlockedAddressError,
    FetchError,
    NoTextError,
    TooLargeError,
    UnsupportedContentError,
)
from index.settings import Settings
from index.sources import (
    canonical_url,
    check_address,
    clean_text,
    from_file,
    from_html,
    from_text,
    from_url,
    markdown_to_text,
    text_fingerprint,
)
from tests.index.articles import NEWS_PAGE
from tests.index.local_server import LocalServer, redirect, respond, stream_without_length

ARTICLE_SENTENCES = [
    "has been fined £85,000 after an engine-room fire forced the evacuation of 212 passengers",
    "had postponed a scheduled inspection of the vessel's fuel lines three times",
    "“Passengers were put at risk by decisions that were made in an office, not on the water,”",
    "Crew members used extinguishers to contain the blaze while a second vessel took passengers to shore.",
    "the company's managing director, Ewan Fairbairn, said the firm accepted the ruling",
    "The fine will be paid in instalments over two years, the tribunal said.",
]

BOILERPLATE = {
    "cookie banner": "We use cookies",
    "navigation": "Subscribe to the Courier",
    "image caption": "at her berth in Eastmoor harbour",
    "photo credit": "Tobias Lindqvist",
    "donation appeal": "Donate today",
    "related links": "Harbour dredging delayed",
    "footer": "All rights reserved",
    "footer links": "Privacy policy",
}

PLAIN_ARTICLE = (
    "Library hours extended\n\n"
    "The county library service will open its six branches on Sunday afternoons from next month, "
    "the council announced on Friday.\n\n"
    "The change follows a survey in which most respondents asked for weekend opening."
)


# --- cleaning ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("one   two\tthree", "one two three"),
        ("non\u00a0breaking\u2009spaces", "non breaking spaces"),
        ("zero\u200bwidth\ufeff and soft\u00adhyphen", "zerowidth and softhyphen"),
        ("windows line.\r\nNext line.\r\n\r\nends.", "windows line.\nNext line.\n\nends."),
        ("first paragraph.\n\n\n\n\nsecond paragraph.", "first paragraph.\n\nsecond paragraph."),
        ("  \n\n  padded text.  \n\n  ", "padded text."),
        ("a hard-wrapped line that goes\non after the break.", "a hard-wrapped line that goes on after the break."),
        ("Caf\u0065\u0301 opens.", "Caf\u00e9 opens."),
        ("bell\x07 and escape\x1b gone.", "bell and escape gone."),
    ],
    ids=[
        "runs-of-spaces",
        "unicode-spaces",
        "invisible-characters",
        "crlf",
        "many-blank-lines",
        "outer-whitespace",
        "hard-wrapped-prose",
        "nfc",
        "control-characters",
    ],
)
def test_clean_text_normalizes_spacing_and_unicode(raw: str, cleaned: str) -> None:
    assert clean_text(raw) == cleaned


def test_clean_text_keeps_one_line_per_finished_sentence_paragraph() -> None:
    text = "The vote passed.\nThe mayor left early."
    assert clean_text(text) == text


def test_a_pasted_headline_on_its_own_line_does_not_merge_into_the_first_sentence(settings: Settings) -> None:
    article = from_text("Phone call row deepens\nThe minister said on Monday that the call took place.", settings)
    assert article.title == "Phone call row deepens"


# --- canonical URLs and fingerprints -------------------------------------------------------------


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("https://news.example.com/story?utm_source=x&utm_medium=y", "https://news.example.com/story"),
        ("https://news.example.com/story?fbclid=abc&gclid=def", "https://news.example.com/story"),
        ("https://news.example.com/story#comments", "https://news.example.com/story"),
        ("HTTPS://NEWS.Example.COM/story", "https://news.example.com/story"),
        ("https://www.example.com/story", "https://example.com/story"),
        ("https://news.example.com/story/", "https://news.example.com/story"),
        ("https://news.example.com:443/story", "https://news.example.com/story"),
        ("https://news.example.com/story?b=2&a=1", "https://news.example.com/story?a=1&b=2"),
        ("  https://news.example.com/story  ", "https://news.example.com/story"),
    ],
    ids=["utm", "click-ids", "fragment", "host-case", "www", "trailing-slash", "default-port", "query-order", "spaces"],
)
def test_canonical_url_ignores_trivial_differences(one: str, other: str) -> None:
    assert canonical_url(one) == canonical_url(other)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("https://news.example.com/story?id=1", "https://news.example.com/story?id=2"),
        ("https://news.example.com/Story", "https://news.example.com/story"),
        ("https://news.example.com/a/story", "https://news.example.com/b/story"),
        ("https://news.example.com:8443/story", "https://news.example.com/story"),
    ],
    ids=["query-value", "path-case", "path", "port"],
)
def test_canonical_url_keeps_differences_that_name_another_page(one: str, other: str) -> None:
    assert canonical_url(one) != canonical_url(other)


def test_text_fingerprint_ignores_case_and_spacing() -> None:
    assert text_fingerprint("The Vote  passed.\n\nMayor left.") == text_fingerprint("the vote passed. MAYOR left.")


def test_text_fingerprint_tells_different_texts_apart() -> None:
    assert text_fingerprint("The vote passed.") != text_fingerprint("The vote failed.")


# --- Markdown ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markdown", "text"),
    [
        ("# Council budget", "Council budget"),
        ("### A smaller heading", "A smaller heading"),
        ("Some **bold** and *italic* and __strong__ words.", "Some bold and italic and strong words."),
        ("Read [the report](https://example.com/report.pdf) today.", "Read the report today."),
        ("Before ![a chart](chart.png)after.", "Before after."),
        ("> A quoted line.", "A quoted line."),
        ("Above.\n\n---\n\nBelow.", "Above.\n\nBelow."),
    ],
    ids=["heading", "small-heading", "emphasis", "link", "image", "blockquote", "rule"],
)
def test_markdown_markup_is_stripped(markdown: str, text: str) -> None:
    assert markdown_to_text(markdown) == text


def test_markdown_keeps_underscores_inside_words() -> None:
    assert markdown_to_text("Set max_download_bytes to 2*3*4 bytes.") == "Set max_download_bytes to 2*3*4 bytes."


def test_markdown_subheading_stays_out_of_the_title(settings: Settings) -> None:
    text = "# Council budget\n\n## Libraries spared\n\nThe council voted on Tuesday to keep all nine libraries open."
    assert from_text(text, settings, source="markdown").title == "Council budget"


# --- which addresses may be fetched --------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.0.0.7",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "fe80::1",
        "fd00:ec2::254",
    ],
)
def test_check_address_refuses_the_hosts_own_networks(address: str) -> None:
    with pytest.raises(BlockedAddressError, match="Refusing to fetch"):
        check_address(address)


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"])
def test_check_address_allows_public_addresses(address: str) -> None:
    check_address(address)


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/story",
        "http://127.1/story",
        "http://2130706433/story",
        "http://0x7f000001/story",
        "http://[::1]/story",
        "http://0.0.0.0/story",
    ],
    ids=["localhost", "short-ip", "decimal-ip", "hex-ip", "ipv6-loopback", "any"],
)
def test_fetch_refuses_urls_that_resolve_to_loopback(url: str, settings: Settings) -> None:
    with pytest.raises(BlockedAddressError):
        from_url(url, settings)


@pytest.mark.parametrize("url", ["ftp://example.com/story", "file:///etc/passwd", "http:///no-host"])
def test_fetch_refuses_what_is_not_a_web_address(url: str, settings: Settings) -> None:
    with pytest.raises(FetchError, match="Not a web address"):
        from_url(url, settings)


def test_fetch_from_a_local_server_is_refused_by_default(server: LocalServer, settings: Settings) -> None:
    server.routes["/story"] = respond(NEWS_PAGE)
    with pytest.raises(BlockedAddressError):
        from_url(server.url("/story"), settings)
    assert server.hits == [], "the refusal must come before any connection"


def test_fetch_from_a_local_server_works_when_private_hosts_are_allowed(
    server: LocalServer, open_settings: Settings
) -> None:
    server.routes["/story"] = respond(NEWS_PAGE)
    article = from_url(server.url("/story"), open_settings)
    assert article.title == "Ferry operator fined after engine fire on Lake Varrow crossing"
    assert article.url == server.url("/story")
    assert article.source == "url"


def test_fetch_of_plain_text_keeps_the_text(server: LocalServer, open_settings: Settings) -> None:
    server.routes["/notes.txt"] = respond(PLAIN_ARTICLE, content_type="text/plain; charset=utf-8")
    article = from_url(server.url("/notes.txt"), open_settings)
    assert article.text == PLAIN_ARTICLE
    assert article.title == "Library hours extended"


# --- redirects -----------------------------------------------------------------------------------


def test_redirects_are_followed_to_the_article(server: LocalServer, open_settings: Settings) -> None:
    server.routes["/short"] = redirect("/moved", status=301)
    server.routes["/moved"] = redirect(server.url("/story"), status=307)
    server.routes["/story"] = respond(NEWS_PAGE)
    article = from_url(server.url("/short"), open_settings)
    assert server.hits == ["/short", "/moved", "/story"]
    assert article.url == server.url("/story")
    assert "fined £85,000" in article.text


def test_a_redirect_into_the_hosts_network_is_refused(
    server: LocalServer, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first hop is a public name (pointed at the test server); its redirect to loopback must be re-checked."""
    real_resolve = sources.resolve

    def resolve(host: str, port: int, allow_private: bool) -> str:
        if host == "public.news.test":
            return "127.0.0.1"
        return real_resolve(host, port, allow_private)

    monkeypatch.setattr(sources, "resolve", resolve)
    port = server.base.rsplit(":", 1)[1]
    server.routes["/story"] = redirect(f"http://127.0.0.1:{port}/admin")
    server.routes["/admin"] = respond(NEWS_PAGE)
    with pytest.raises(BlockedAddressError):
        from_url(f"http://public.news.test:{port}/story", settings)
    assert server.hits == ["/story"]


def test_a_redirect_to_another_scheme_is_refused(server: LocalServer, open_settings: Settings) -> None:
    server.routes["/story"] = redirect("file:///etc/passwd")
    with pytest.raises(FetchError, match="Not a web address"):
        from_url(server.url("/story"), open_settings)


def test_too_many_redirects_is_an_error(server: LocalServer, open_settings: Settings) -> None:
    for n in range(10):
        server.routes[f"/hop{n}"] = redirect(f"/hop{n + 1}")
    with pytest.raises(FetchError, match="Too many redirects"):
        from_url(server.url("/hop0"), open_settings.model_copy(update={"max_redirects": 3}))
    assert len(server.hits) == 4


def test_a_redirect_loop_ends_in_an_error(server: LocalServer, open_settings: Settings) -> None:
    server.routes["/loop"] = redirect("/loop")
    with pytest.raises(FetchError, match="Too many redirects"):
        from_url(server.url("/loop"), open_settings)


# --- what the server answers ---------------------------------------------------------------------


def test_a_missing_page_is_a_fetch_error_naming_the_status(server: LocalServer, open_settings: Settings) -> None:
    with pytest.raises(FetchError, match="HTTP 404 Not Found") as caught:
        from_url(server.url("/gone"), open_settings)
    assert server.url("/gone") in str(caught.value)


def test_a_server_error_is_a_fetch_error(server: LocalServer, open_settings: Settings) -> None:
    server.routes["/broken"] = respond("oops", status=503)
    with pytest.raises(FetchError, match="HTTP 503"):
        from_url(server.url("/broken"), open_settings)


@pytest.mark.parametrize("content_type", ["image/png", "application/pdf", "application/octet-stream"])
def test_content_that_is_not_a_page_or_text_is_refused(
    server: LocalServer, open_settings: Settings, content_type: str
) -> None:
    server.routes["/file"] = respond(b"\x89PNG\r\n\x1a\n" + b"\0" * 100, content_type=content_type)
    with pytest.raises(UnsupportedContentError, match=content_type):
        from_url(server.url("/file"), open_settings)


def test_a_body_over_the_limit_with_content_length_is_refused(server: LocalServer, open_settings: Settings) -> None:
    server.routes["/big"] = respond("<p>" + "x" * 10_000 + "</p>")
    with pytest.raises(TooLargeError, match="limit"):
        from_url(server.url("/big"), open_settings.model_copy(update={"max_download_bytes": 4096}))


def test_a_body_over_the_limit_without_content_length_is_refused(server: LocalServer, open_settings: Settings) -> None:
    server.routes["/stream"] = stream_without_length(200_000)
    with pytest.raises(TooLargeError, match="limit"):
        from_url(server.url("/stream"), open_settings.model_copy(update={"max_download_bytes": 4096}))


def test_a_slow_server_times_out(server: LocalServer, open_settings: Settings) -> None:
    def slow(handler: BaseHTTPRequestHandler) -> None:
        server.release.wait(10)
        respond(NEWS_PAGE)(handler)

    server.routes["/slow"] = slow
    with pytest.raises(FetchError, match="Timed out"):
        from_url(server.url("/slow"), open_settings.model_copy(update={"fetch_timeout": 0.3}))


# --- HTML extraction -----------------------------------------------------------------------------


@pytest.fixture
def news_article(settings: Settings) -> sources.ExtractedArticle:
    return from_html(NEWS_PAGE, settings, url="https://courier.example/ferry-fine")


@pytest.mark.parametrize("sentence", ARTICLE_SENTENCES)
def test_extraction_keeps_every_article_paragraph(news_article: sources.ExtractedArticle, sentence: str) -> None:
    assert sentence in news_article.text


@pytest.mark.parametrize("phrase", BOILERPLATE.values(), ids=BOILERPLATE.keys())
def test_extraction_drops_the_page_furniture(news_article: sources.ExtractedArticle, phrase: str) -> None:
    assert phrase not in news_article.text


def test_extraction_reads_title_byline_and_date(news_article: sources.ExtractedArticle) -> None:
    assert news_article.title == "Ferry operator fined after engine fire on Lake Varrow crossing"
    assert news_article.byline == "Imogen Castellanos"
    assert news_article.published == "2024-03-14"


def test_extraction_keeps_the_paragraphs_in_order(news_article: sources.ExtractedArticle) -> None:
    positions = [news_article.text.index(s) for s in ARTICLE_SENTENCES]
    assert positions == sorted(positions)


def test_the_same_page_extracts_the_same_text_every_time(settings: Settings) -> None:
    first = from_html(NEWS_PAGE, settings).text
    for _ in range(5):
        assert from_html(NEWS_PAGE, settings).text == first


def test_a_page_without_an_article_has_no_text(settings: Settings) -> None:
    page = "<html><body><nav><a href='/'>Home</a> <a href='/news'>News</a></nav></body></html>"
    with pytest.raises(NoTextError):
        from_html(page, settings)


# --- files ---------------------------------------------------------------------------------------


def test_a_text_file_is_read(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "library.txt"
    path.write_text(PLAIN_ARTICLE, encoding="utf-8")
    article = from_file(path, settings)
    assert article.text == PLAIN_ARTICLE
    assert article.title == "Library hours extended"


def test_a_text_file_title_can_be_given(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "library.txt"
    path.write_text(PLAIN_ARTICLE, encoding="utf-8")
    assert from_file(path, settings, title="Sunday opening").title == "Sunday opening"


def test_a_markdown_file_is_read_without_its_markup(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "library.md"
    path.write_text(
        "# Library hours extended\n\nThe county library service will open **six branches** on Sunday "
        "afternoons, [the council](https://council.example) announced on Friday.\n",
        encoding="utf-8",
    )
    article = from_file(path, settings)
    assert article.title == "Library hours extended"
    assert "will open six branches on Sunday afternoons, the council announced on Friday." in article.text
    assert "**" not in article.text
    assert "](" not in article.text


@pytest.mark.parametrize("suffix", [".html", ".htm", ".HTML"])
def test_an_html_file_is_extracted_like_a_page(tmp_path: Path, settings: Settings, suffix: str) -> None:
    path = tmp_path / f"ferry{suffix}"
    path.write_text(NEWS_PAGE, encoding="utf-8")
    article = from_file(path, settings)
    assert article.title == "Ferry operator fined after engine fire on Lake Varrow crossing"
    assert "We use cookies" not in article.text
    assert all(s in article.text for s in ARTICLE_SENTENCES)


def test_a_latin1_text_file_is_still_read(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "old.txt"
    path.write_bytes("Le café de la gare rouvre ses portes après trois ans de travaux.".encode("latin-1"))
    assert "café" in from_file(path, settings).text


@pytest.mark.parametrize("name", ["report.pdf", "photo.png", "sheet.docx", "noextension"])
def test_unsupported_file_types_are_refused(tmp_path: Path, settings: Settings, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"%PDF-1.7 some bytes that are not an article at all, really not")
    with pytest.raises(UnsupportedContentError, match="Unsupported file type"):
        from_file(path, settings)


def test_a_file_over_the_size_limit_is_refused(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "huge.txt"
    path.write_text("A sentence that repeats. " * 1000, encoding="utf-8")
    with pytest.raises(TooLargeError, match="limit"):
        from_file(path, settings.model_copy(update={"max_download_bytes": 4096}))


def test_a_missing_file_is_a_clear_error(tmp_path: Path, settings: Settings) -> None:
    with pytest.raises(NoTextError, match="No such file"):
        from_file(tmp_path / "nowhere.txt", settings)


def test_a_directory_is_not_a_file(tmp_path: Path, settings: Settings) -> None:
    with pytest.raises(UnsupportedContentError, match="directory"):
        from_file(tmp_path, settings)


# --- pasted text ---------------------------------------------------------------------------------


def test_pasted_text_takes_its_title_from_the_first_line(settings: Settings) -> None:
    article = from_text(PLAIN_ARTICLE, settings)
    assert article.title == "Library hours extended"
    assert article.source == "text"


def test_pasted_text_uses_a_given_title(settings: Settings) -> None:
    assert from_text(PLAIN_ARTICLE, settings, title="  Sunday\nopening ").title == "Sunday opening"


def test_a_very_long_first_line_is_shortened_for_the_title(settings: Settings) -> None:
    article = from_text("word " * 100 + "end.", settings)
    assert len(article.title) <= sources.MAX_TITLE_CHARS
    assert article.title.endswith("…")


@pytest.mark.parametrize(
    "text", ["", "   \n\n\t ", "\u200b\u200b", "Too short."], ids=["empty", "spaces", "zw", "short"]
)
def test_text_with_nothing_to_index_is_refused(settings: Settings, text: str) -> None:
    with pytest.raises(NoTextError, match="No article text"):
        from_text(text, settings)


def test_an_article_over_the_character_limit_is_refused(settings: Settings) -> None:
    with pytest.raises(TooLargeError):
        from_text("A long sentence about nothing. " * 100, settings.model_copy(update={"max_article_chars": 1000}))
