"""Plain data passed between the engine's parts and to its callers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open character range ``[start, end)`` of an article's text."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class ExtractedArticle:
    """What a source yields before it is stored: cleaned text plus metadata."""

    text: str
    title: str
    url: str | None = None
    byline: str | None = None
    published: str | None = None
    source: str = "text"


@dataclass(frozen=True, slots=True)
class Chunk:
    """A run of whole sentences that fits the model, located in its article's text."""

    start: int
    end: int
    text: str


@dataclass(frozen=True, slots=True)
class Article:
    id: int
    collection: str
    title: str
    url: str | None
    byline: str | None
    published: str | None
    source: str
    added_by: str | None
    added_at: str
    chars: int
    chunks: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class AddResult:
    """The outcome of adding one article; ``duplicate`` means nothing new was stored."""

    article: Article
    duplicate: bool = False
    reason: str | None = None  # "url" or "text" when duplicate

    @property
    def chunks(self) -> int:
        return self.article.chunks

    def to_dict(self) -> dict[str, Any]:
        return {"article": self.article.to_dict(), "duplicate": self.duplicate, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Excerpt:
    """One quoted passage: ``text == article_text[start:end]`` always holds."""

    text: str
    start: int
    end: int
    article_id: int
    title: str
    url: str | None
    score: float  # what excerpts are ranked by
    relevance: float  # how well the excerpt itself matches; below the threshold it is a weak match
    # The sentence that answers best, as offsets into the article (inside [start, end)).
    focus_start: int
    focus_end: int
    article_chars: int
    published: str | None = None
    weak: bool = False

    @property
    def position(self) -> float:
        """Where the excerpt starts, as a fraction of the article (0 = top)."""
        return self.start / self.article_chars if self.article_chars else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {"excerpt": data.pop("text"), **data, "position": round(self.position, 3)}


@dataclass(frozen=True, slots=True)
class Answer:
    """Ranked excerpts for a question; ``answered`` is False when only weak matches were found."""

    question: str
    collection: str
    answered: bool
    results: list[Excerpt] = field(default_factory=list)
    # The articles the question was limited to (None: the whole collection), and whether a follow-up found
    # nothing in the articles it preferred and was answered from the whole collection instead.
    scope: tuple[int, ...] | None = None
    widened: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "collection": self.collection,
            "answered": self.answered,
            "scope": None if self.scope is None else list(self.scope),
            "widened": self.widened,
            "results": [r.to_dict() for r in self.results],
        }


@dataclass(frozen=True, slots=True)
class Stats:
    collection: str
    articles: int
    chunks: int
    sentences: int
    model: str
    dimension: int
    index_bytes: int
    database_bytes: int  # the whole database, every collection's
    stored_bytes: int = 0  # this collection's texts and vectors in the database
    votes_up: int = 0  # over the last FEEDBACK_DAYS days
    votes_down: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RebuildResult:
    collection: str
    articles: int
    chunks: int
    seconds: float


# --- feeds ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Feed:
    """An RSS or Atom feed a collection follows, and where its polling stands (times are UTC ISO 8601)."""

    id: int
    collection: str
    url: str
    title: str | None
    notify: str | None  # where the caller announces new articles (the bot: a channel id); opaque to the engine
    added_by: str | None
    added_at: str
    etag: str | None
    last_modified: str | None
    last_ok: str | None  # when a poll last succeeded
    last_error: str | None  # why the last poll failed; None once one succeeds
    failures: int  # polls failed in a row
    next_poll: str
    pending: int  # new entries left for later polls
    added: int = 0  # articles added from it so far

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class FeedEntryResult:
    """What one poll did with one entry: ``added``, ``duplicate`` (already stored), ``failed`` or ``skipped``."""

    link: str | None
    title: str
    outcome: str
    article: Article | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "link": self.link,
            "title": self.title,
            "outcome": self.outcome,
            "article_id": self.article.id if self.article else None,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class FeedPoll:
    """One poll of one feed; ``error`` when the feed itself could not be read."""

    feed: Feed  # as it stands after the poll
    entries: list[FeedEntryResult] = field(default_factory=list)
    not_modified: bool = False
    error: str | None = None

    def outcomes(self, outcome: str) -> list[FeedEntryResult]:
        return [e for e in self.entries if e.outcome == outcome]

    @property
    def added(self) -> list[Article]:
        return [e.article for e in self.entries if e.outcome == "added" and e.article is not None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "feed": self.feed.to_dict(),
            "not_modified": self.not_modified,
            "error": self.error,
            "entries": [e.to_dict() for e in self.entries],
        }


@dataclass(frozen=True, slots=True)
class FeedAdded:
    """The outcome of subscribing; ``duplicate`` means the collection already followed that feed."""

    feed: Feed
    entries: int | None  # entries the feed holds now (None: not read again, it was followed already)
    duplicate: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"feed": self.feed.to_dict(), "entries": self.entries, "duplicate": self.duplicate}
