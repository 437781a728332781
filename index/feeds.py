"""RSS and Atom feeds: parse one, find the entries not seen yet, poll it into a collection.

A poll fetches the feed document through the same checked fetcher as pages (``sources.fetch_feed``: address
checks, pinned connection, one deadline, size cap), conditionally when nothing is left over from the last poll,
and adds at most ``settings.feed_articles_per_poll`` new entries through ``Engine.add_url``, waiting
``settings.feed_host_seconds`` between two requests to one host. Every entry handled is remembered (by its id and
its link), whatever became of its article afterwards, so that an article removed on purpose never comes back.
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import io
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from index import sources
from index.errors import (
    ArticleNotFoundError,
    DatabaseDamagedError,
    FeedNotFoundError,
    FetchError,
    NewsQuoteError,
    NotAFeedError,
    TooManyFeedsError,
    UserInputError,
)
from index.ids import parse_article_id
from index.models import AddResult, ExtractedArticle, Feed, FeedAdded, FeedEntryResult, FeedPoll

if TYPE_CHECKING:
    from index.service import Engine


class NoLinkError(UserInputError):
    """A feed entry with no web page to read: skipped, not failed."""


DEFAULT_POLL_MINUTES = 15.0
MAX_BACKOFF_MINUTES = 24 * 60  # a feed failing for days is still tried once a day
JITTER = 0.1  # +-10% on every wait, so that feeds added together do not stay in step
MAX_ENTRY_ATTEMPTS = 3  # an article that failed this often is given up (a paywall, a dead link)
MAX_KEY_CHARS = 500
MAX_ERROR_CHARS = 300
MAX_VALIDATOR_CHARS = 200  # an ETag or Last-Modified longer than this is not sent back


@dataclass(frozen=True, slots=True)
class Entry:
    """One item of a feed: its id (or link, or a hash when it has neither), its article's link and title."""

    key: str
    link: str | None
    title: str
    published: float | None = None  # seconds since the epoch, when the feed dates it


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    title: str | None
    entries: list[Entry]


# --- parsing -------------------------------------------------------------------------------------


def parse(body: bytes, url: str, content_type: str = "", charset: str | None = None) -> ParsedFeed:
    """Read an RSS or Atom document; entries come newest first when every one is dated, else in document order.

    Raises NotAFeedError when the document is neither.
    """
    import feedparser

    headers = {"content-location": url, "content-type": content_type + (f"; charset={charset}" if charset else "")}
    # A stream, never bytes or str: feedparser opens a string that names a file or a URL.
    doc = feedparser.parse(io.BytesIO(body), response_headers=headers)
    if not doc.get("version"):
        reason = f" ({str(doc.get('bozo_exception')).splitlines()[0][:100]})" if doc.get("bozo_exception") else ""
        raise NotAFeedError(f"{url} is not an RSS or Atom feed{reason}.")
    entries = [_entry(item) for item in doc.entries]
    if entries and all(e.published is not None for e in entries):
        entries.sort(key=lambda e: e.published or 0.0, reverse=True)
    title = sources.given_title(doc.feed.get("title")) or None
    return ParsedFeed(title, entries)


def _entry(item: dict) -> Entry:
    link = str(item.get("link") or "").strip() or None
    if link and urlsplit(link).scheme not in ("http", "https"):
        link = None  # a mailto:, a javascript: or a relative link feedparser could not resolve
    title = sources.given_title(str(item.get("title") or "")) or link or "Untitled"
    key = str(item.get("id") or "").strip() or link
    if not key:
        key = "sha256:" + hashlib.sha256(f"{title}\n{item.get('summary', '')}".encode()).hexdigest()
    elif len(key) > MAX_KEY_CHARS:
        key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    dated = item.get("published_parsed") or item.get("updated_parsed")
    return Entry(key, link, title, float(calendar.timegm(dated)) if dated else None)


# --- schedule ------------------------------------------------------------------------------------


def next_poll(now: datetime, minutes: float, failures: int = 0, rng: random.Random | None = None) -> datetime:
    """When to poll next: ``minutes`` after ``now``, doubled for each failure in a row up to a day, jittered."""
    wait = min(minutes * 2 ** min(failures, 30), max(MAX_BACKOFF_MINUTES, minutes))
    return now + timedelta(minutes=wait * (rng or random).uniform(1 - JITTER, 1 + JITTER))


def stamp(moment: datetime) -> str:
    """A UTC time as the database keeps it (ISO 8601 to the second, which sorts as text)."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


class HostThrottle:
    """At least ``seconds`` between the starts of two requests to one host, across threads."""

    def __init__(
        self,
        seconds: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self.seconds = seconds
        self._clock = clock
        self._sleep = sleep
        self._next: dict[str, float] = {}  # host -> earliest start of its next request
        self._lock = threading.Lock()

    def wait(self, url: str) -> None:
        """Wait for this URL's host's turn, and book the next one."""
        if self.seconds <= 0:
            return
        host = (urlsplit(url).hostname or "").lower()
        with self._lock:
            now = self._clock()
            if len(self._next) > 1000:  # forget hosts whose turn has passed
                self._next = {h: t for h, t in self._next.items() if t > now}
            start = max(now, self._next.get(host, now))
            self._next[host] = start + self.seconds
        if start > now:
            self._sleep(start - now)


def _validator(value: str | None) -> str | None:
    """An ETag or Last-Modified fit to send back: printable ASCII and short, else none."""
    if value and len(value) <= MAX_VALIDATOR_CHARS and value.isascii() and value.isprintable():
        return value
    return None


def _short(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def feed_url(url: str) -> str:
    """The URL to fetch for what someone typed: stripped, https:// when no scheme is given, and checked."""
    url = url.strip()
    if "://" not in url:
        url = "https://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(f"Not a web address: '{url[:200]}'. Give the feed's full http:// or https:// URL.")
    return url


# --- polling -------------------------------------------------------------------------------------


class FeedPoller:
    """Subscribe a collection to feeds and poll them into it, through one engine."""

    def __init__(self, engine: Engine, rng: random.Random | None = None) -> None:
        self.engine = engine
        self.store = engine.store
        self.settings = engine.settings
        self.throttle = HostThrottle(engine.settings.feed_host_seconds)
        self.rng = rng or random.Random()

    def add(
        self,
        url: str,
        collection: str,
        *,
        added_by: str | None = None,
        notify: str | None = None,
        now: datetime | None = None,
    ) -> FeedAdded:
        """Follow a feed after reading it once (so a page that is not a feed is refused now); due for a poll at once."""
        url = feed_url(url)
        canonical = sources.canonical_url(url)
        followed = self.store.feeds(collection)
        for feed in followed:
            if sources.canonical_url(feed.url) == canonical:
                return FeedAdded(feed, None, duplicate=True)
        if len(followed) >= self.settings.max_feeds:
            raise TooManyFeedsError(self.settings.max_feeds)
        self.throttle.wait(url)
        fetched = sources.fetch_feed(url, self.settings)
        parsed = parse(fetched.body, fetched.url, fetched.content_type, fetched.charset)
        feed, known = self.store.add_feed(
            collection,
            url,
            canonical,
            title=parsed.title,
            added_by=added_by,
            notify=notify,
            now=stamp(now or datetime.now(UTC)),
            limit=self.settings.max_feeds,
        )
        return FeedAdded(feed, len(parsed.entries), duplicate=known)

    def due(self, collections: set[str] | None = None, now: datetime | None = None) -> list[Feed]:
        """Feeds whose next poll is due at ``now``, of ``collections`` (default: all), the longest overdue first."""
        due = self.store.due_feeds(stamp(now or datetime.now(UTC)))
        return [feed for feed in due if collections is None or feed.collection in collections]

    def poll(
        self,
        feed: Feed,
        minutes: float = DEFAULT_POLL_MINUTES,
        *,
        now: datetime | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> FeedPoll:
        """Fetch a feed and add its new entries' articles, up to the per-poll limit; record how it went.

        A feed that cannot be fetched or read counts a failure and backs off; an entry whose article cannot be
        added is recorded as failed and tried again on the next polls, up to ``MAX_ENTRY_ATTEMPTS`` times.
        ``stop`` is asked between entries: those not reached wait for the next poll.
        """
        now = now or datetime.now(UTC)
        # Entries left over from the last poll are not in a 304: ask for the whole document again.
        conditional = feed.pending == 0
        try:
            self.throttle.wait(feed.url)
            fetched = sources.fetch_feed(
                feed.url,
                self.settings,
                etag=feed.etag if conditional else None,
                last_modified=feed.last_modified if conditional else None,
            )
            if fetched.not_modified:
                return FeedPoll(self._succeeded(feed, now, minutes, pending=0), not_modified=True)
            parsed = parse(fetched.body, fetched.url, fetched.content_type, fetched.charset)
        except UserInputError as error:  # unreachable, refused, too large, not a feed
            return self._failed(feed, error, now, minutes)
        results: list[FeedEntryResult] = []
        todo = self._unseen(feed, parsed.entries)
        handed: list[tuple[Entry, int]] = []

        def readers() -> Iterator[Callable[[], ExtractedArticle | AddResult]]:
            for entry, attempts in todo[: self.settings.feed_articles_per_poll]:
                if stop is not None and stop():
                    return
                handed.append((entry, attempts))
                yield functools.partial(self._read_entry, feed, entry)

        retries = 0
        try:
            # Together, so that the model gets several short articles at once; each outcome comes in order.
            added = self.engine.add_all(readers(), feed.collection, added_by=f"feed:{feed.id}")
            for n, outcome in enumerate(added):
                entry, attempts = handed[n]  # the reader of outcome n was handed out before it came
                result = self._record_entry(feed, entry, attempts, now, outcome)
                results.append(result)
                retries += result.outcome == "failed" and attempts + 1 < MAX_ENTRY_ATTEMPTS
        except DatabaseDamagedError:
            raise
        except NewsQuoteError as error:  # not the entry's fault: the model, the index; stop and back off
            return self._failed(feed, error, now, minutes, results)
        pending = len(todo) - len(results) + retries
        updated = self._succeeded(
            feed,
            now,
            minutes,
            pending=pending,
            title=parsed.title or feed.title,
            etag=_validator(fetched.etag),
            last_modified=_validator(fetched.last_modified),
        )
        return FeedPoll(updated, results)

    def _unseen(self, feed: Feed, entries: list[Entry]) -> list[tuple[Entry, int]]:
        """The entries still to handle, each with the attempts made on it so far."""
        seen = self.store.seen_entries(feed.collection, sources.canonical_url(feed.url))
        done_links = {
            link
            for link, outcome, attempts in seen.values()
            if link and (outcome != "failed" or attempts >= MAX_ENTRY_ATTEMPTS)
        }
        todo: list[tuple[Entry, int]] = []
        keys: set[str] = set()
        for entry in entries:
            prior = seen.get(entry.key)
            if entry.key in keys or (prior and (prior[1] != "failed" or prior[2] >= MAX_ENTRY_ATTEMPTS)):
                continue
            if prior is None and entry.link and sources.canonical_url(entry.link) in done_links:
                continue  # the same article under a new id: feeds rewrite their ids now and then
            keys.add(entry.key)
            todo.append((entry, prior[2] if prior else 0))
        return todo

    def _read_entry(self, feed: Feed, entry: Entry) -> ExtractedArticle | AddResult:
        """Fetch an entry's article, waiting for its host's turn; an article already stored is not fetched."""
        link = sources.canonical_url(entry.link) if entry.link else None
        if entry.link is None or link is None:
            raise NoLinkError("The entry links to no web page.")
        known = self.store.find_duplicate(feed.collection, link, "")
        if known is not None:  # only a fetch waits for its host's turn
            return AddResult(known[0], duplicate=True, reason="url")
        self.throttle.wait(entry.link)
        return self.engine.read_url(entry.link, feed.collection)

    def _record_entry(
        self, feed: Feed, entry: Entry, attempts: int, now: datetime, outcome: AddResult | UserInputError
    ) -> FeedEntryResult:
        """Keep what became of an entry, so that the next polls skip it or try it again."""
        link = sources.canonical_url(entry.link) if entry.link else None
        if isinstance(outcome, AddResult):
            kept = "duplicate" if outcome.duplicate else "added"
            result = FeedEntryResult(entry.link, entry.title, kept, outcome.article)
        else:
            skipped = isinstance(outcome, NoLinkError)
            result = FeedEntryResult(
                None if skipped else entry.link, entry.title, "skipped" if skipped else "failed", error=_short(outcome)
            )
        self.store.record_entry(
            feed.collection,
            sources.canonical_url(feed.url),
            entry.key,
            link=link,
            outcome=result.outcome,
            article_id=result.article.id if result.article else None,
            error=result.error,
            attempts=attempts + 1,
            now=stamp(now),
        )
        return result

    def _succeeded(self, feed: Feed, now: datetime, minutes: float, **changes: object) -> Feed:
        updated = self.store.update_feed(
            feed.collection,
            feed.id,
            last_ok=stamp(now),
            last_error=None,
            failures=0,
            next_poll=stamp(next_poll(now, minutes, 0, self.rng)),
            **changes,
        )
        return updated or feed  # removed while it was being polled: report on it as it was

    def _failed(
        self,
        feed: Feed,
        error: BaseException,
        now: datetime,
        minutes: float,
        results: list[FeedEntryResult] | None = None,
    ) -> FeedPoll:
        failures = feed.failures + 1
        updated = self.store.update_feed(
            feed.collection,
            feed.id,
            last_error=_short(error),
            failures=failures,
            next_poll=stamp(next_poll(now, minutes, failures, self.rng)),
        )
        return FeedPoll(updated or feed, results or [], error=_short(error))


def parse_feed_id(text: str) -> int:
    """Read a feed number as people type it (``3``, ``#3``); anything else raises ``FeedNotFoundError``."""
    try:
        return parse_article_id(text)
    except ArticleNotFoundError as error:
        raise FeedNotFoundError(error.article_id) from None
