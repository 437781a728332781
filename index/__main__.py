"""Command line for the engine: ``python -m index add|ask|list|remove|rebuild|stats|feed``."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import textwrap
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from pydantic import ValidationError

from index import sources
from index.errors import NewsQuoteError, UserInputError
from index.feeds import parse_feed_id
from index.ids import parse_article_id
from index.models import Answer, Feed, FeedPoll
from index.service import Engine, Reader
from index.settings import Settings
from index.wording import plural


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS, help="where the database and indexes live")
    common.add_argument("--collection", default=argparse.SUPPRESS, help="collection to use (default: default)")

    parser = argparse.ArgumentParser(
        prog="python -m index",
        description="Add news articles and ask questions answered with quoted excerpts.",
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    add = commands.add_parser("add", parents=[common], help="add articles from URLs, files or pasted text")
    add.add_argument(
        "sources", nargs="*", metavar="SOURCE", help="http(s) URL, .html/.htm/.txt/.md file, or - for stdin text"
    )
    add.add_argument("--text", help="add this text as an article")
    add.add_argument("--title", help="title for what is added (default: its headline, or its first sentence)")
    add.add_argument("--json", action="store_true", help="print machine-readable results")

    ask = commands.add_parser("ask", parents=[common], help="answer a question with quoted excerpts")
    ask.add_argument("question")
    ask.add_argument("-k", type=int, default=3, help="how many excerpts (1-10, default 3)")
    ask.add_argument(
        "--article", action="append", metavar="ID", help="answer from this article only (repeat for several)"
    )
    ask.add_argument("--json", action="store_true", help="print the answer as JSON")

    listing = commands.add_parser("list", parents=[common], help="list the collection's articles")
    listing.add_argument("--json", action="store_true")

    remove = commands.add_parser("remove", parents=[common], help="remove an article by id")
    remove.add_argument("article_id", metavar="ID", help="the article's number, as `list` shows it")

    commands.add_parser("rebuild", parents=[common], help="re-embed every article (after changing the model)")
    stats = commands.add_parser("stats", parents=[common], help="show counts, model and index size")
    stats.add_argument("--json", action="store_true")
    feedback = commands.add_parser("feedback", parents=[common], help="the votes on answers, as evaluation files")
    feedback_commands = feedback.add_subparsers(dest="feedback_command", required=True, metavar="FEEDBACK_COMMAND")
    export = feedback_commands.add_parser(
        "export",
        parents=[common],
        help="write the upvoted answers as SQuAD v1.1 for `python -m index.eval` (every collection unless "
        "--collection), and the downvoted ones beside it as FILE.downvoted.json",
    )
    export.add_argument("file", type=Path, metavar="FILE.json")

    feed = commands.add_parser("feed", parents=[common], help="follow RSS and Atom feeds: add, list, remove, poll")
    feed_commands = feed.add_subparsers(dest="feed_command", required=True, metavar="FEED_COMMAND")
    feed_add = feed_commands.add_parser("add", parents=[common], help="follow a feed (it is read once to check it)")
    feed_add.add_argument("url", metavar="URL", help="the feed's http(s) address")
    feed_add.add_argument("--json", action="store_true")
    feed_list = feed_commands.add_parser("list", parents=[common], help="list the feeds followed, and how they fare")
    feed_list.add_argument("--json", action="store_true")
    feed_remove = feed_commands.add_parser("remove", parents=[common], help="stop following a feed (articles stay)")
    feed_remove.add_argument("feed_id", metavar="ID", help="the feed's number, as `feed list` shows it")
    feed_poll = feed_commands.add_parser("poll", parents=[common], help="poll every feed now and add new articles")
    feed_poll.add_argument("--json", action="store_true")
    migrate = commands.add_parser(
        "migrate", parents=[common], help="copy the data directory into PostgreSQL (no re-embedding; re-runnable)"
    )
    migrate.add_argument("--to", required=True, metavar="postgresql://...", help="the PostgreSQL database to fill")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    collection = getattr(args, "collection", "default")
    try:
        settings = Settings(**({"data_dir": args.data_dir} if hasattr(args, "data_dir") else {}))
        engine = Engine(settings)
    except NewsQuoteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ValidationError as exc:  # a bad NEWSQUOTE_* variable or .env entry
        problems = "; ".join(f"NEWSQUOTE_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        print(f"error: invalid setting: {problems}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as exc:  # an unreadable data directory or database
        print(f"error: cannot open the data directory: {exc}", file=sys.stderr)
        return 2
    try:
        return COMMANDS[args.command](engine, args, collection)
    except NewsQuoteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        engine.close()


def _add(engine: Engine, args: argparse.Namespace, collection: str) -> int:
    settings, title = engine.settings, args.title
    jobs: list[tuple[str, Reader]] = []
    if args.text is not None:
        jobs.append(("pasted text", lambda: sources.from_text(args.text, settings, title=title)))
    for source in args.sources:
        if source == "-":  # bytes, so that binary piped in is refused like a binary file, and encodings are guessed
            data = sys.stdin.buffer.read()
            jobs.append(("standard input", partial(sources.from_bytes, data, "stdin.txt", settings, title, "text")))
        elif source.lower().startswith(("http://", "https://")):
            jobs.append((source, partial(engine.read_url, source, collection, title)))
        else:
            jobs.append((source, partial(sources.from_file, Path(source), settings, title)))
    if not jobs:
        raise UserInputError("Nothing to add: give URLs or files, '-' for standard input, or --text.")
    failures = 0
    results = []
    # All at once, so that the model gets several short articles together; each is stored as soon as it is embedded.
    for (label, _), outcome in zip(jobs, engine.add_all([read for _, read in jobs], collection), strict=True):
        if isinstance(outcome, UserInputError):
            failures += 1
            print(f"error: {label}: {outcome}", file=sys.stderr)
            continue
        results.append(outcome.to_dict())
        if not args.json:
            a = outcome.article
            if outcome.duplicate:
                same = "same URL" if outcome.reason == "url" else "same text"
                print(f"already stored: #{a.id} {a.title!r} ({same}); nothing added")
            else:
                print(f"added #{a.id} {a.title!r}: {plural(a.chunks, 'chunk')}, {plural(a.chars, 'character')}")
    if args.json:
        print(json.dumps(results, indent=2))
    return 2 if failures else 0


def _ask(engine: Engine, args: argparse.Namespace, collection: str) -> int:
    only = [parse_article_id(a, collection) for a in args.article or []]
    answer = engine.ask(args.question, collection, k=args.k, **({"articles": only} if only else {}))
    if args.json:
        print(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(render_answer(answer))
    return 0


def render_answer(answer: Answer) -> str:
    """Plain-text answer for a terminal."""
    lines: list[str] = []
    if not answer.answered:
        lines.append("Nothing in the indexed articles answers this. Closest passages (weak matches):")
    for n, r in enumerate(answer.results, 1):
        where = f"{r.position:.0%} into the article" + (", weak match" if r.weak else "")
        lines.append(
            f"\n[{n}] {r.title}"
            + (f" <{r.url}>" if r.url else "")
            + f"  (#{r.article_id}, {where}, score {r.score:.2f})"
        )
        lines.extend(textwrap.wrap(f"“{r.text}”", width=100, initial_indent="    ", subsequent_indent="    "))
    return "\n".join(lines).lstrip("\n")


def _list(engine: Engine, args: argparse.Namespace, collection: str) -> int:
    articles = engine.articles(collection)
    if args.json:
        print(json.dumps([a.to_dict() for a in articles], indent=2, ensure_ascii=False))
        return 0
    if not articles:
        print(f"No articles in collection '{collection}'.")
    for a in articles:
        print(f"#{a.id:<5} {a.title[:60]:<60} {plural(a.chunks, 'chunk'):>11}  {a.added_at[:10]}  {a.url or ''}")
    return 0


def _remove(engine: Engine, args: argparse.Namespace, collection: str) -> int:
    article = engine.remove(parse_article_id(args.article_id, collection), collection)
    print(f"removed #{article.id} {article.title!r} ({plural(article.chunks, 'chunk')})")
    return 0


def _rebuild(engine: Engine, args: argparse.Namespace, collection: str) -> int:
    from tqdm import tqdm

    _ = engine.embedder  # load the model before the bar starts, so the bar measures embedding alone
    with tqdm(total=0, unit="chunk", desc=f"re-embedding '{collection}'", file=sys.stderr) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        result = engine.rebuild(collection, progress)
    done = f"{plural(result.articles, 'article')}, {plural(result.chunks, 'chunk')}"
    print(f"rebuilt '{collection}': {done} in {result.seconds:.1f} s")
    return 0


def _stats(engine: Engine, args: argparse.Namespace, collection: str) -> int:
    stats = engine.stats(collection)
    if args.json:
        print(json.dumps(stats.to_dict(), indent=2))
    else:
        for key, value in stats.to_dict().items():
            print(f"{key:<16}{value:,}" if isinstance(value, int) else f"{key:<16}{value}")
    return 0


COMMANDS = {"add": _add, "ask": _ask, "list": _list, "remove": _remove, "rebuild": _rebuild, "stats": _stats}

# --- feeds -----------------------------------------------------------------------------------------


def _feed(engine: Engine, args: argparse.Namespace, collection: str) -> int:
    if args.feed_command == "add":
        added = engine.add_feed(args.url, collection)
        if args.json:
            print(json.dumps(added.to_dict(), indent=2, ensure_ascii=False))
        elif added.duplicate:
            print(f"already following: feed #{added.feed.id} {added.feed.title or ''!r} <{added.feed.url}>")
        else:
            limit = engine.settings.feed_articles_per_poll
            print(
                f"following feed #{added.feed.id} {added.feed.title or ''!r} <{added.feed.url}>: "
                f"{plural(added.entries or 0, 'entry', 'entries')} now; each poll adds up to "
                f"{plural(limit, 'new article')} (`feed poll`)"
            )
        return 0
    if args.feed_command == "list":
        feeds = engine.feeds(collection)
        if args.json:
            print(json.dumps([f.to_dict() for f in feeds], indent=2, ensure_ascii=False))
        elif not feeds:
            print(f"No feeds followed in collection '{collection}'.")
        for f in [] if args.json else feeds:
            print(f"#{f.id:<4} {(f.title or '')[:60]:<60} {f.url}")
            print(f"      {feed_state(f)}")
        return 0
    if args.feed_command == "remove":
        gone = engine.remove_feed(parse_feed_id(args.feed_id), collection)
        kept = f"the {plural(gone.added, 'article')} it brought {'stays' if gone.added == 1 else 'stay'}"
        kept = kept if gone.added else "it brought no articles"
        print(f"stopped following feed #{gone.id} {gone.title or ''!r}; {kept}")
        return 0
    polls = engine.poll_feeds(collection)
    if args.json:
        print(json.dumps([p.to_dict() for p in polls], indent=2, ensure_ascii=False))
    elif not polls:
        print(f"No feeds followed in collection '{collection}'.")
    for poll in [] if args.json else polls:
        print(poll_summary(poll))
    return 1 if any(p.error for p in polls) else 0


def feed_state(feed: Feed) -> str:
    """One line on how a feed fares: articles, last success, failures, what waits."""
    bits = [f"{plural(feed.added, 'article')} added", f"last ok {feed.last_ok or 'never'}"]
    if feed.failures:
        bits.append(f"{plural(feed.failures, 'failure')} in a row, last: {feed.last_error}")
    if feed.pending:
        bits.append(f"{plural(feed.pending, 'entry', 'entries')} waiting")
    bits.append(f"next poll {feed.next_poll}")
    return " · ".join(bits)


def poll_summary(poll: FeedPoll) -> str:
    """What one poll did, a line for the feed and one per entry handled."""
    head = f"feed #{poll.feed.id} {poll.feed.title or poll.feed.url!r}: "
    if poll.error and not poll.entries:
        return head + f"failed: {poll.error}"
    if poll.not_modified:
        return head + "not modified since the last poll"
    counts = [f"{len(poll.outcomes(o))} {word}" for o, word in OUTCOME_WORDS.items()]
    lines = [head + ", ".join(counts) + (f"; {poll.feed.pending} waiting for later polls" if poll.feed.pending else "")]
    for entry in poll.entries:
        label = f"#{entry.article.id} {entry.article.title!r}" if entry.article else repr(entry.title)
        lines.append(f"  {OUTCOME_WORDS[entry.outcome]}: {label} <{entry.link or 'no link'}>")
        if entry.error:
            lines.append(f"    {entry.error}")
    if poll.error:
        lines.append(f"  stopped: {poll.error}")
    return "\n".join(lines)


OUTCOME_WORDS = {"added": "added", "duplicate": "already stored", "failed": "failed", "skipped": "skipped"}
COMMANDS["feed"] = _feed

# --- feedback --------------------------------------------------------------------------------------


def _feedback(engine: Engine, args: argparse.Namespace, collection: str) -> int:
    """``feedback export FILE.json``: upvoted answers to FILE.json, downvoted ones to FILE.downvoted.json."""
    upvoted, downvoted = engine.export_feedback(args.collection if hasattr(args, "collection") else None)
    target: Path = args.file
    beside = target.with_name(f"{target.stem if target.suffix else target.name}.downvoted{target.suffix or '.json'}")
    for path, squad in ((target, upvoted), (beside, downvoted)):
        try:
            path.write_text(json.dumps(squad, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        except OSError as exc:
            raise UserInputError(f"Cannot write {path}: {exc.strerror or exc}") from exc
    up, down = (sum(len(p["qas"]) for d in squad["data"] for p in d["paragraphs"]) for squad in (upvoted, downvoted))
    print(f"wrote {plural(up, 'upvoted answer')} to {target} and {plural(down, 'downvoted answer')} to {beside}")
    if up:
        print(f"score a change against them: python -m index.eval {target}")
    return 0


COMMANDS["feedback"] = _feedback


def _migrate(engine: Engine, args: argparse.Namespace, collection: str) -> int:
    from index.migration import copy_to_postgresql
    from index.pg_store import PgStore
    from index.store import Store

    if not isinstance(engine.store, Store):
        raise UserInputError("migrate copies an embedded data directory: unset NEWSQUOTE_DATABASE_URL")
    target = PgStore(args.to)
    try:
        result = copy_to_postgresql(engine.store, target)
    finally:
        target.close()
    print(
        f"copied {plural(result.copied, 'article')} of {plural(result.collections, 'collection')} "
        f"({result.skipped} already there)"
    )
    return 0


COMMANDS["migrate"] = _migrate

if __name__ == "__main__":
    sys.exit(main())
