"""One hierarchy of errors; each builds the message a user sees."""

from __future__ import annotations

import shlex


class NewsQuoteError(Exception):
    """Base class: ``str(error)`` is a one-line message fit to show a user."""

    exit_code = 1


class UserInputError(NewsQuoteError):
    """The caller asked for something that cannot be done as asked."""

    exit_code = 2


class EmptyQuestionError(UserInputError):
    def __init__(self) -> None:
        super().__init__('The question is empty: ask something, e.g. "who claimed the call happened?"')


class QuestionTooLongError(UserInputError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"The question is too long: keep it under {limit} characters.")


class SourceError(UserInputError):
    """An article could not be read from its source."""


class FetchError(SourceError):
    """A URL could not be fetched."""


class BlockedAddressError(FetchError):
    """A URL resolves to a host the bot must not reach (loopback, private, link-local, metadata)."""


class UnsupportedContentError(SourceError):
    """The source is not HTML, plain text or Markdown."""


class TooLargeError(SourceError):
    """The source is larger than the configured limit."""


class NoTextError(SourceError):
    """Nothing readable could be extracted."""


class ArticleNotFoundError(UserInputError):
    def __init__(self, article_id: int | str, collection: str) -> None:
        # The collection is kept for callers, not shown: in the bot it is an internal name.
        super().__init__(f"There is no article #{article_id} here: list the articles to see their numbers.")
        self.article_id = article_id
        self.collection = collection


class EmptyCollectionError(UserInputError):
    def __init__(self, collection: str) -> None:
        super().__init__("No articles have been added here yet: add one first, then ask again.")
        self.collection = collection


class FeedNotFoundError(UserInputError):
    def __init__(self, feed_id: int | str) -> None:
        super().__init__(f"There is no feed #{feed_id} here: list the feeds to see their numbers.")
        self.feed_id = feed_id


class TooManyFeedsError(UserInputError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} feeds are followed here already, the most allowed: remove one to add another.")
        self.limit = limit


class NotAFeedError(SourceError):
    """The document fetched is not RSS or Atom."""


class ModelMismatchError(NewsQuoteError):
    def __init__(self, collection: str, stored: str, configured: str) -> None:
        super().__init__(
            f"These articles were embedded with model '{stored}' but '{configured}' is configured: "
            "an admin must rebuild the index (/rebuild in Discord, `python -m index rebuild` on the command line)."
        )
        self.collection = collection


class ConfigError(NewsQuoteError):
    exit_code = 2


class ModelLoadError(ConfigError):
    def __init__(self, model: str, reason: str) -> None:
        super().__init__(f"Could not load embedding model '{model}': {reason}")


class DatabaseDamagedError(NewsQuoteError):
    """The SQLite file is damaged: nothing is written to it, and what is damaged is never quoted.

    Exit code 1: not the caller's mistake, and running the command again will not help. The message names the
    file, ``PRAGMA integrity_check``'s verdict and what to do (``remedy``, by default a backup or ``.recover``).
    """

    exit_code = 1

    def __init__(self, path: object, verdict: str, remedy: str | None = None) -> None:
        file = shlex.quote(str(path))
        remedy = remedy or (
            f"Restore it from a backup, or salvage what is readable with `sqlite3 {file} .recover | sqlite3 "
            "recovered.db` and put recovered.db in its place."
        )
        super().__init__(f"The database {path} is damaged ({verdict}); it was left as it is. {remedy}")
        self.path = path
        self.verdict = verdict


class AnswerNotFoundError(UserInputError):
    def __init__(self, answer_id: int) -> None:
        super().__init__("That answer is no longer on record: ask the question again.")
        self.answer_id = answer_id


class NotOnThisBackendError(ConfigError):
    """A feature the PostgreSQL backend does not offer yet."""

    def __init__(self, feature: str) -> None:
        super().__init__(
            f"{feature} are not available with NEWSQUOTE_DATABASE_URL (PostgreSQL) yet: "
            "unset it to use the embedded store for them."
        )
