"""Feeds: RSS and Atom served on 127.0.0.1, polled into a collection with the fake embedder."""

from __future__ import annotations

import contextlib
import json
import random
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from index import Engine, Settings
from index import __main__ as cli
from index.errors import (
    BlockedAddressError,
    FeedNotFoundError,
    NotAFeedError,
    TooLargeError,
    TooManyFeedsError,
    UnsupportedContentError,
)
from index.feeds import MAX_BACKOFF_MINUTES, MAX_ENTRY_ATTEMPTS, HostThrottle, next_poll, parse
from index.sources import FEED_TYPES, fetch_feed, fetch_url
from tests.conftest import drop_database, fresh_database
from tests.fakes.embedder import HashEmbedder
from tests.index.conftest import run_cli
from tests.index.local_server import LocalServer, Route, respond

COLLECTION = "news"
LAST_MODIFIED = "Mon, 01 Jan 2024 00:00:00 GMT"


def story(n: int) -> str:
    """A short plain-text article, different in words (and so in fingerprint) for every ``n``."""
    return (
        f"Harbour story number {n}\n\n"
        f"The council said on Tuesday that project {n} would reopen the quay by spring. "
        f"Residents of district {n} asked for more buses."
    )


def rss(server: LocalServer, numbers: range | list[int], title: str = "Harbour news") -> str:
    items = "".join(
        f"<item><title>Story {n}</title><link>{server.url(f'/story/{n}')}</link><guid>urn:story:{n}</guid>"
        f"<pubDate>{format_datetime(datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=n), usegmt=True)}</pubDate>"
        "</item>"
        for n in numbers
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>{title}</title>{items}</channel></rss>'


def atom(numbers: range | list[int]) -> str:
    entries = "".join(
        f'<entry><title>Story {n}</title><link href="/story/{n}"/><id>tag:example,2024:{n}</id>'
        f"<updated>2024-01-01T{n:02d}:00:00Z</updated></entry>"
        for n in numbers
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>Harbour news (Atom)</title><id>tag:example,2024:feed</id><updated>2024-01-02T00:00:00Z</updated>"
        f"{entries}</feed>"
    )


class FeedRoute:
    """A feed document that answers conditional requests with 304 and records the headers of every request."""

    def __init__(self, body: str, content_type: str = "application/rss+xml; charset=utf-8", etag: str = '"v1"'):
        self.body, self.content_type, self.etag = body, content_type, etag
        self.status = 200
        self.requests: list[dict[str, str]] = []

    def change(self, body: str, etag: str) -> None:
        self.body, self.etag = body, etag

    def __call__(self, handler: BaseHTTPRequestHandler) -> None:
        self.requests.append(dict(handler.headers.items()))
        if self.status != 200:
            respond("Internal error", "text/plain", status=self.status)(handler)
            return
        if handler.headers.get("If-None-Match") == self.etag:
            handler.send_response(304)
            handler.send_header("ETag", self.etag)
            handler.end_headers()
            return
        data = self.body.encode()
        handler.send_response(200)
        handler.send_header("Content-Type", self.content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("ETag", self.etag)
        handler.send_header("Last-Modified", LAST_MODIFIED)
        handler.end_headers()
        handler.wfile.write(data)


def serve_stories(server: LocalServer, numbers: range | list[int]) -> None:
    for n in numbers:
        server.routes[f"/story/{n}"] = respond(story(n), "text/plain; charset=utf-8")


def story_hits(server: LocalServer) -> list[str]:
    return [hit for hit in server.hits if hit.startswith("/story/")]


@pytest.fixture(params=["sqlite", "postgresql"])
def feed_settings(request: pytest.FixtureRequest, open_settings: Settings) -> Iterator[Settings]:
    """The feed tests' settings, on each storage backend: feeds behave the same on both."""
    url = fresh_database(request.getfixturevalue("postgres_server")) if request.param == "postgresql" else None
    yield open_settings.model_copy(
        update={"feed_host_seconds": 0.0, "max_feeds": 3, "feed_articles_per_poll": 10, "database_url": url}
    )
    if url:
        drop_database(url)


@pytest.fixture
def feed_engine(feed_settings: Settings) -> Iterator[Engine]:
    engine = Engine(feed_settings, embedder=HashEmbedder())
    engine.feed_poller.rng = random.Random(7)
    yield engine
    engine.close()


@pytest.fixture
def feed(server: LocalServer) -> FeedRoute:
    route = FeedRoute(rss(server, range(3)))
    server.routes["/feed.xml"] = route
    serve_stories(server, range(600))
    return route


def follow(engine: Engine, server: LocalServer, path: str = "/feed.xml") -> int:
    return engine.add_feed(server.url(path), COLLECTION, added_by="42").feed.id


# --- following -------------------------------------------------------------------------------------


def test_rss_feed_adds_each_entrys_article(feed_engine: Engine, server: LocalServer, feed: FeedRoute) -> None:
    added = feed_engine.add_feed(server.url("/feed.xml"), COLLECTION)
    poll = feed_engine.poll_feed(added.feed.id, COLLECTION)

    assert (added.feed.title, added.entries, added.duplicate) == ("Harbour news", 3, False)
    assert [e.outcome for e in poll.entries] == ["added"] * 3
    stored = {a.url: a for a in feed_engine.articles(COLLECTION)}
    assert set(stored) == {server.url(f"/story/{n}") for n in range(3)}
    assert {a.added_by for a in stored.values()} == {f"feed:{added.feed.id}"}
    assert poll.feed.added == 3


def test_a_polls_articles_go_to_the_model_together(feed_engine: Engine, server: LocalServer, feed: FeedRoute) -> None:
    feed.body = rss(server, range(6))
    embedder = feed_engine.embedder
    assert isinstance(embedder, HashEmbedder)
    feed_id = follow(feed_engine, server)
    before = embedder.calls
    poll = feed_engine.poll_feed(feed_id, COLLECTION)
    assert [e.outcome for e in poll.entries] == ["added"] * 6
    assert sorted(e.link or "" for e in poll.entries) == sorted(server.url(f"/story/{n}") for n in range(6))
    assert embedder.calls - before == 2  # the chunks of all six in one call, their sentences in another


def test_atom_feed_with_relative_links_adds_each_entrys_article(
    feed_engine: Engine, server: LocalServer, feed: FeedRoute
) -> None:
    server.routes["/atom.xml"] = respond(atom(range(4)), "application/atom+xml")

    poll = feed_engine.poll_feed(follow(feed_engine, server, "/atom.xml"), COLLECTION)

    assert [e.link for e in poll.entries] == [server.url(f"/story/{n}") for n in (3, 2, 1, 0)]  # newest first
    assert len(feed_engine.articles(COLLECTION)) == 4


def test_second_poll_is_conditional_and_a_304_adds_nothing(
    feed_engine: Engine, server: LocalServer, feed: FeedRoute
) -> None:
    feed_id = follow(feed_engine, server)
    feed_engine.poll_feed(feed_id, COLLECTION)
    fetched = len(story_hits(server))

    again = feed_engine.poll_feed(feed_id, COLLECTION)

    assert feed.requests[-1]["If-None-Match"] == '"v1"'
    assert feed.requests[-1]["If-Modified-Since"] == LAST_MODIFIED
    assert again.not_modified
    assert again.entries == []
    assert len(story_hits(server)) == fetched
    assert len(feed_engine.articles(COLLECTION)) == 3
    assert again.feed.last_ok is not None
    assert again.feed.failures == 0


def test_a_changed_feed_adds_only_its_new_entry(feed_engine: Engine, server: LocalServer, feed: FeedRoute) -> None:
    feed_id = follow(feed_engine, server)
    feed_engine.poll_feed(feed_id, COLLECTION)
    feed.change(rss(server, range(4)), '"v2"')

    poll = feed_engine.poll_feed(feed_id, COLLECTION)

    assert [(e.outcome, e.link) for e in poll.entries] == [("added", server.url("/story/3"))]
    assert story_hits(server).count("/story/0") == 1
    assert poll.feed.etag == '"v2"'


def test_subscribing_twice_keeps_one_feed(feed_engine: Engine, server: LocalServer, feed: FeedRoute) -> None:
    first = feed_engine.add_feed(server.url("/feed.xml"), COLLECTION)
    again = feed_engine.add_feed(server.url("/feed.xml/?utm_source=x").replace("http://", "https://"), COLLECTION)

    assert again.duplicate
    assert again.feed.id == first.feed.id
    assert len(feed_engine.feeds(COLLECTION)) == 1


def test_feeds_per_collection_are_limited(feed_engine: Engine, server: LocalServer, feed: FeedRoute) -> None:
    for n in range(3):
        server.routes[f"/feed{n}.xml"] = respond(rss(server, [n], title=f"Feed {n}"), "application/rss+xml")
        follow(feed_engine, server, f"/feed{n}.xml")

    with pytest.raises(TooManyFeedsError, match="3 feeds"):
        follow(feed_engine, server)
    assert len(feed_engine.feeds("elsewhere")) == 0
    feed_engine.add_feed(server.url("/feed.xml"), "elsewhere")  # the limit is per collection


@pytest.mark.parametrize(
    ("body", "content_type", "error"),
    [
        ("<html><body><p>Welcome</p></body></html>", "text/html", UnsupportedContentError),
        ('<?xml version="1.0"?><catalog><book/></catalog>', "application/xml", NotAFeedError),
        ("/etc/passwd", "text/xml", NotAFeedError),  # a body naming a file is never opened as one
    ],
    ids=["html-page", "other-xml", "a-file-name"],
)
def test_what_is_not_a_feed_is_refused_when_following(
    feed_engine: Engine, server: LocalServer, body: str, content_type: str, error: type[Exception]
) -> None:
    server.routes["/not-a-feed"] = respond(body, content_type)

    with pytest.raises(error, match="not an RSS or Atom feed"):
        follow(feed_engine, server, "/not-a-feed")
    assert feed_engine.feeds(COLLECTION) == []


def test_removing_a_feed_keeps_its_articles(feed_engine: Engine, server: LocalServer, feed: FeedRoute) -> None:
    feed_id = follow(feed_engine, server)
    feed_engine.poll_feed(feed_id, COLLECTION)

    gone = feed_engine.remove_feed(feed_id, COLLECTION)

    assert (gone.id, gone.added) == (feed_id, 3)
    assert feed_engine.feeds(COLLECTION) == []
    assert len(feed_engine.articles(COLLECTION)) == 3
    with pytest.raises(FeedNotFoundError):
        feed_engine.remove_feed(feed_id, COLLECTION)


def test_a_feed_of_another_collection_is_not_found(feed_engine: Engine, server: LocalServer, feed: FeedRoute) -> None:
    feed_id = follow(feed_engine, server)

    with pytest.raises(FeedNotFoundError):
        feed_engine.poll_feed(feed_id, "elsewhere")
    with pytest.raises(FeedNotFoundError):
        feed_engine.remove_feed(feed_id, "elsewhere")


# --- what is never added twice -------------------------------------------------------------------


def test_an_article_removed_on_purpose_is_not_added_again(
    feed_engine: Engine, server: LocalServer, feed: FeedRoute
) -> None:
    feed_id = follow(feed_engine, server)
    feed_engine.poll_feed(feed_id, COLLECTION)
    unwanted = next(a for a in feed_engine.articles(COLLECTION) if a.url == server.url("/story/1"))
    feed_engine.remove(unwanted.id, COLLECTION)
    feed.change(rss(server, range(4)), '"v2"')

    poll = feed_engine.poll_feed(feed_id, COLLECTION)

    assert [e.link for e in poll.entries] == [server.url("/story/3")]
    assert server.url("/story/1") not in {a.url for a in feed_engine.articles(COLLECTION)}


def test_following_a_feed_again_does_not_bring_back_what_was_removed(
    feed_engine: Engine, server: LocalServer, feed: FeedRoute
) -> None:
    feed_id = follow(feed_engine, server)
    feed_engine.poll_feed(feed_id, COLLECTION)
    for article in feed_engine.articles(COLLECTION):
        feed_engine.remove(article.id, COLLECTION)
    feed_engine.remove_feed(feed_id, COLLECTION)

    poll = feed_engine.poll_feed(follow(feed_engine, server), COLLECTION)

    assert poll.entries == []
    assert feed_engine.articles(COLLECTION) == []


def test_an_entry_whose_id_changed_is_recognised_by_its_link(
    feed_engine: Engine, server: LocalServer, feed: FeedRoute
) -> None:
    feed_id = follow(feed_engine, server)
    feed_engine.poll_feed(feed_id, COLLECTION)
    feed_engine.remove(feed_engine.articles(COLLECTION)[0].id, COLLECTION)
    feed.change(rss(server, range(3)).replace("urn:story:", "urn:renamed:"), '"v2"')

    poll = feed_engine.poll_feed(feed_id, COLLECTION)

    assert poll.entries == []
    assert len(feed_engine.articles(COLLECTION)) == 2


def test_an_article_already_added_by_hand_counts_as_a_duplicate(
    feed_engine: Engine, server: LocalServer, feed: FeedRoute
) -> None:
    by_hand = feed_engine.add_url(server.url("/story/2"), COLLECTION).article

    poll = feed_engine.poll_feed(follow(feed_engine, server), COLLECTION)

    assert [(e.outcome, e.article.id if e.article else None) for e in poll.entries if e.outcome != "added"] == [
        ("duplicate", by_hand.id)
    ]
    assert story_hits(server).count("/story/2") == 1  # known by its URL: not fetched again


def test_two_processes_polling_one_feed_at_once_add_each_entry_once(
    feed_settings: Settings, server: LocalServer, feed: FeedRoute
) -> None:
    """Two engines on one PostgreSQL (as two bot processes): both fetch every story at the same moment."""
    if feed_settings.database_url is None:
        pytest.skip("processes share one database on PostgreSQL")
    both = threading.Barrier(2)

    def story_for_both(n: int) -> Route:
        def handle(handler: BaseHTTPRequestHandler) -> None:
            with contextlib.suppress(threading.BrokenBarrierError):
                both.wait(timeout=5)  # answer once both pollers asked: each has seen the entry as new
            respond(story(n), "text/plain; charset=utf-8")(handler)

        return handle

    for n in range(3):
        server.routes[f"/story/{n}"] = story_for_both(n)
    engines = [Engine(feed_settings, embedder=HashEmbedder()) for _ in range(2)]
    try:
        feed_id = follow(engines[0], server)
        with ThreadPoolExecutor(2) as pool:
            polls = list(pool.map(lambda engine: engine.poll_feed(feed_id, COLLECTION), engines))
        after = engines[1].feed(feed_id, COLLECTION)
        stored = engines[1].articles(COLLECTION)
    finally:
        for engine in engines:
            engine.close()

    assert len(story_hits(server)) == 6  # every story fetched by both: the race was run
    added = sorted(e.link or "" for p in polls for e in p.entries if e.outcome == "added")
    assert added == [server.url(f"/story/{n}") for n in range(3)]
    assert sorted(a.url or "" for a in stored) == added
    assert after.added == 3


# --- limits, failures, restarts ------------------------------------------------------------------


def test_a_feed_of_500_entries_adds_the_per_poll_limit_and_the_rest_later(
    feed_engine: Engine, server: LocalServer, feed: FeedRoute
) -> None:
    feed.change(rss(server, range(500)), '"big"')
    feed_id = follow(feed_engine, server)

    first = feed_engine.poll_feed(feed_id, COLLECTION)
    second = feed_engine.poll_feed(feed_id, COLLECTION)

    assert [e.link for e in first.entries] == [server.url(f"/story/{n}") for n in range(499, 489, -1)]
    assert first.feed.pending == 490
    assert "If-None-Match" not in feed.requests[-1]  # entries left over: the whole document again, never a 304
    assert [e.link for e in second.entries] == [server.url(f"/story/{n}") for n in range(489, 479, -1)]
    assert second.feed.pending == 480
    assert len(story_hits(server)) == 20
    assert len(feed_engine.articles(COLLECTION)) == 20


def test_a_feed_that_breaks_backs_off_and_keeps_its_last_error(
    feed_engine: Engine, server: LocalServer, feed: FeedRoute
) -> None:
    feed_id = follow(feed_engine, server)
    ok = feed_engine.poll_feed(feed_id, COLLECTION).feed
    feed.status = 500
    waits = []
    for _ in range(3):
        before = datetime.now(UTC)
        poll = feed_engine.poll_feed(feed_id, COLLECTION)
        waits.append((datetime.fromisoformat(poll.feed.next_poll) - before).total_seconds() / 60)

    assert poll.error is not None
    assert "HTTP 500" in poll.error
    assert (poll.feed.failures, poll.feed.last_error, poll.feed.last_ok) == (3, poll.error, ok.last_ok)
    for wait, expected in zip(waits, (30, 60, 120), strict=True):
        assert expected * 0.9 - 0.1 <= wait <= expected * 1.1 + 0.1
    feed.status = 200
    healed = feed_engine.poll_feed(feed_id, COLLECTION).feed
    assert (healed.failures, healed.last_error) == (0, None)


@pytest.mark.parametrize(("failures", "low", "high"), [(0, 13.5, 16.5), (1, 27, 33), (4, 216, 264), (12, 1296, 1584)])
def test_backoff_doubles_per_failure_up_to_a_day_with_jitter(failures: int, low: float, high: float) -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    rng = random.Random(1)
    waits = [(next_poll(now, 15, failures, rng) - now).total_seconds() / 60 for _ in range(200)]

    assert low <= min(waits)
    assert max(waits) <= high
    assert max(waits) <= MAX_BACKOFF_MINUTES * 1.1
    assert len({round(w, 3) for w in waits}) > 100  # jittered: feeds added together drift apart


def test_an_article_that_fails_is_tried_again_then_given_up(
    feed_engine: Engine, server: LocalServer, feed: FeedRoute
) -> None:
    del server.routes["/story/1"]  # 404
    feed_id = follow(feed_engine, server)

    polls = [feed_engine.poll_feed(feed_id, COLLECTION) for _ in range(MAX_ENTRY_ATTEMPTS + 1)]

    failed = [[e.error for e in p.entries if e.outcome == "failed"] for p in polls]
    assert [len(f) for f in failed] == [1] * MAX_ENTRY_ATTEMPTS + [0]
    assert "HTTP 404" in (failed[0][0] or "")
    assert story_hits(server).count("/story/1") == MAX_ENTRY_ATTEMPTS
    assert polls[-1].feed.pending == 0
    assert polls[-1].not_modified


def test_a_restart_resumes_where_the_last_poll_left_off(
    feed_settings: Settings, server: LocalServer, feed: FeedRoute
) -> None:
    settings = feed_settings.model_copy(update={"feed_articles_per_poll": 2})
    first = Engine(settings, embedder=HashEmbedder())
    feed_id = follow(first, server)
    first.poll_feed(feed_id, COLLECTION)
    first.close()

    second = Engine(settings, embedder=HashEmbedder())
    [resumed] = second.feeds(COLLECTION)
    rest = second.poll_feed(feed_id, COLLECTION)
    done = second.poll_feed(feed_id, COLLECTION)
    second.close()

    assert (resumed.etag, resumed.pending, resumed.added) == ('"v1"', 1, 2)
    assert [e.link for e in rest.entries] == [server.url("/story/0")]
    assert done.not_modified
    assert feed.requests[-1]["If-None-Match"] == '"v1"'
    assert sorted(story_hits(server)) == ["/story/0", "/story/1", "/story/2"]


def test_due_feeds_are_those_whose_time_has_come(feed_engine: Engine, server: LocalServer, feed: FeedRoute) -> None:
    feed_id = follow(feed_engine, server)
    assert [f.id for f in feed_engine.due_feeds()] == [feed_id]  # a new feed is due at once
    assert feed_engine.due_feeds({"elsewhere"}) == []

    feed_engine.poll_feed(feed_id, COLLECTION)

    assert feed_engine.due_feeds() == []
    later = datetime.now(UTC) + timedelta(minutes=17)
    assert [f.id for f in feed_engine.feed_poller.due(None, later)] == [feed_id]


def test_a_poll_asked_to_stop_leaves_the_rest_for_later(
    feed_engine: Engine, server: LocalServer, feed: FeedRoute
) -> None:
    feed_id = follow(feed_engine, server)
    asked: list[int] = []

    poll = feed_engine.poll_feed(feed_id, COLLECTION, stop=lambda: asked.append(1) or len(asked) > 1)

    assert len(poll.entries) == 1
    assert poll.feed.pending == 2


# --- fetching the feed safely -------------------------------------------------------------------------


def test_a_feed_on_a_private_address_is_refused_by_default(settings: Settings, server: LocalServer) -> None:
    server.routes["/feed.xml"] = respond(rss(server, range(1)), "application/rss+xml")
    engine = Engine(settings, embedder=HashEmbedder())

    with pytest.raises(BlockedAddressError):
        engine.add_feed(server.url("/feed.xml"), COLLECTION)
    engine.close()
    assert server.hits == []


def test_a_feed_larger_than_the_download_cap_is_refused(open_settings: Settings, server: LocalServer) -> None:
    server.routes["/big.xml"] = respond(rss(server, range(200)), "application/rss+xml")

    with pytest.raises(TooLargeError):
        fetch_feed(server.url("/big.xml"), open_settings.model_copy(update={"max_download_bytes": 2048}))


@pytest.mark.parametrize("content_type", sorted(FEED_TYPES))
def test_feed_types_are_for_feeds_only(open_settings: Settings, server: LocalServer, content_type: str) -> None:
    server.routes["/doc"] = respond(rss(server, range(1)), content_type)

    assert fetch_feed(server.url("/doc"), open_settings).content_type == content_type
    with pytest.raises(UnsupportedContentError, match="only HTML and plain text"):
        fetch_url(server.url("/doc"), open_settings)


def test_a_304_is_only_taken_from_a_conditional_request(open_settings: Settings, server: LocalServer) -> None:
    route = FeedRoute(rss(server, range(1)))
    server.routes["/feed.xml"] = route

    fresh = fetch_feed(server.url("/feed.xml"), open_settings)
    cached = fetch_feed(server.url("/feed.xml"), open_settings, etag=fresh.etag, last_modified=fresh.last_modified)

    assert (fresh.not_modified, fresh.etag, fresh.last_modified) == (False, '"v1"', LAST_MODIFIED)
    assert cached.not_modified
    assert cached.body == b""
    assert "If-None-Match" not in route.requests[0]


def test_requests_to_one_host_are_spaced() -> None:
    clock = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    throttle = HostThrottle(1.0, clock=lambda: clock[0], sleep=sleep)
    for url in ("https://a.test/feed", "https://a.test/story", "https://b.test/x", "https://A.test/again"):
        throttle.wait(url)

    assert slept == [1.0, 1.0]


def test_parse_skips_links_that_are_not_web_pages() -> None:
    body = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
        "<item><title>Mail us</title><link>mailto:desk@example.com</link></item>"
        "<item><title>No link at all</title><description>Text only</description></item>"
        "</channel></rss>"
    )

    parsed = parse(body.encode(), "https://example.com/feed")

    assert [(e.link, e.title) for e in parsed.entries] == [(None, "Mail us"), (None, "No link at all")]
    assert len({e.key for e in parsed.entries}) == 2


# --- the command line -------------------------------------------------------------------------------


def test_cli_follows_lists_and_removes_a_feed(
    tmp_path: Path, server: LocalServer, feed: FeedRoute, feed_settings: Settings
) -> None:
    data = tmp_path / "data"
    env = {"NEWSQUOTE_DATABASE_URL": feed_settings.database_url} if feed_settings.database_url else {}
    adding = env | {"NEWSQUOTE_ALLOW_PRIVATE_HOSTS": "true"}

    added = run_cli("feed", "add", server.url("/feed.xml"), "--collection", COLLECTION, data_dir=data, env=adding)
    listed = run_cli("feed", "list", "--json", "--collection", COLLECTION, data_dir=data, env=env)
    removed = run_cli("feed", "remove", "#1", "--collection", COLLECTION, data_dir=data, env=env)
    missing = run_cli("feed", "remove", "1", "--collection", COLLECTION, data_dir=data, env=env)

    assert added.returncode == 0, added.stderr
    assert "following feed #1 'Harbour news'" in added.stdout
    assert "3 entries" in added.stdout
    assert [f["url"] for f in json.loads(listed.stdout)] == [server.url("/feed.xml")]
    assert removed.stdout == "stopped following feed #1 'Harbour news'; it brought no articles\n"
    assert (missing.returncode, missing.stderr.strip()) == (
        2,
        "error: There is no feed #1 here: list the feeds to see their numbers.",
    )


@pytest.fixture
def in_process_cli(feed_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run ``index.__main__.main`` in this process, on the feed settings and the fake embedder."""

    def settings(**values: object) -> Settings:
        return feed_settings.model_copy(update=values)

    def engine(settings: Settings) -> Engine:
        return Engine(settings, embedder=HashEmbedder())

    monkeypatch.setattr(cli, "Settings", settings)
    monkeypatch.setattr(cli, "Engine", engine)


@pytest.mark.usefixtures("in_process_cli")
def test_cli_poll_prints_what_was_added_skipped_and_failed(
    tmp_path: Path, server: LocalServer, feed: FeedRoute, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--collection", COLLECTION, "--data-dir", str(tmp_path / "data")]
    assert cli.main(["feed", "add", server.url("/feed.xml"), *data]) == 0
    assert cli.main(["add", server.url("/story/0"), *data]) == 0
    del server.routes["/story/1"]
    capsys.readouterr()

    code = cli.main(["feed", "poll", *data])
    out = capsys.readouterr().out
    again = cli.main(["feed", "poll", "--json", *data])
    polled = json.loads(capsys.readouterr().out)

    assert code == 0
    assert out.splitlines()[0] == (
        "feed #1 'Harbour news': 1 added, 1 already stored, 1 failed, 0 skipped; 1 waiting for later polls"
    )
    assert "  failed: 'Story 1' <" in out
    assert "HTTP 404" in out
    assert again == 0
    assert [e["outcome"] for e in polled[0]["entries"]] == ["failed"]


@pytest.mark.usefixtures("in_process_cli")
def test_cli_poll_fails_when_a_feed_cannot_be_read(
    tmp_path: Path, server: LocalServer, feed: FeedRoute, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--collection", COLLECTION, "--data-dir", str(tmp_path / "data")]
    cli.main(["feed", "add", server.url("/feed.xml"), *data])
    feed.status = 503

    code = cli.main(["feed", "poll", *data])

    assert code == 1
    assert "failed: " in capsys.readouterr().out
