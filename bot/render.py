"""Engine results -> Discord messages: pure functions, no network, every Discord limit respected."""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import discord

from bot.settings import MAX_ARTICLES_PER_PAGE
from index.chunking import trim_span
from index.feedback import FEEDBACK_DAYS
from index.models import AddResult, Answer, Article, Excerpt, Feed, FeedAdded, RebuildResult, Stats
from index.wording import plural

CONTENT_LIMIT = 2000
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FOOTER_LIMIT = 2048
EMBED_LIMIT = 6000  # all titles, descriptions, fields, footers and authors of one message's embeds together
FIELDS_LIMIT = 25
EMBEDS_LIMIT = 10
CHOICE_NAME_LIMIT = 100

NO_ANSWER = "Nothing in the indexed articles answers this."
WEAK_HEADER = f"**{NO_ANSWER}** The closest passages, weak matches:"
EMPTY_MENTION = "Ask me a question after the mention, e.g. *@me who confirmed the deal?*"
DIRECT_MESSAGE_REFUSAL = "I only answer inside a server: each server has its own articles. Ask me there, or use /ask."
GENERIC_ERROR = "Something went wrong on my side; it has been logged. Please try again in a moment."
WIDENED = "*Nothing in the articles of the previous answer answers this; from all of this server's articles:*"
NO_MORE = "No other passages answer this: every one that does was shown."
NO_THREAD = "I could not start a thread on this answer (it may have one already, or I lack the permission here)."
THREAD_NAME_LIMIT = 100

ANSWERED_COLOUR = discord.Colour.green()
WEAK_COLOUR = discord.Colour.light_grey()
INFO_COLOUR = discord.Colour.blurple()

Span = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Reply:
    """One message: optional text and up to ten embeds, together within Discord's limits."""

    content: str | None = None
    embeds: list[discord.Embed] = field(default_factory=list)

    def kwargs(self) -> dict[str, Any]:
        """Return the keyword arguments for ``send``/``reply``/``followup.send``."""
        return {"content": self.content, "embeds": self.embeds} if self.content else {"embeds": self.embeds}


# --- escaping ------------------------------------------------------------------------------------

_URL = re.compile(r"https?://[^\s<>]+[^\s<>.,:;\"')\]]")
_INLINE = re.compile(r"([\\*_`~|\[<])")  # emphasis, code, strike, spoiler, masked links, <@mentions>
_MASS_MENTION = re.compile(r"@(everyone|here)\b")
_BLOCK_START = re.compile(r"^(\s*)(>|#{1,3}\s|-#\s|[-+]\s)", re.MULTILINE)  # quote, heading, subtext, list
_NUMBERED = re.compile(r"^(\s*\d+)\.(?=\s)", re.MULTILINE)  # "1. " starts a numbered list


def escape(text: str) -> str:
    """Escape Discord markdown and mentions so ``text`` shows verbatim; URLs stay whole so they still link."""
    return _NUMBERED.sub(r"\1\\.", _BLOCK_START.sub(r"\1\\\2", _escape_inline(text)))


def _escape_inline(text: str) -> str:
    out: list[str] = []
    last = 0
    for match in _URL.finditer(text):
        out.extend((_escape_plain(text[last : match.start()]), match.group()))
        last = match.end()
    out.append(_escape_plain(text[last:]))
    return "".join(out)


def _escape_plain(text: str) -> str:
    return _MASS_MENTION.sub(r"\\@\1", _INLINE.sub(r"\\\1", text))


def truncate(text: str, limit: int) -> str:
    """Shorten ``text`` to ``limit`` characters, ending with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + "…"


def escaped_truncate(text: str, limit: int) -> str:
    """Escape ``text`` and cut it to ``limit`` characters without leaving half an escape behind."""
    out = escape(text)
    if len(out) <= limit:
        return out

    def cut(n: int) -> str:
        return escape(text[:n].rstrip()) + "…"

    keep = bisect.bisect_left(range(len(text)), True, key=lambda n: len(cut(n)) > limit) - 1
    return cut(max(keep, 0))


# --- answers ------------------------------------------------------------------------------------


def where(position: float) -> str:
    """Say where in its article an excerpt stands, e.g. "about 40% in"."""
    if position < 0.05:
        return "at the start of the article"
    if position >= 0.9:
        return "near the end of the article"
    return f"about {round(position * 20) * 5}% in"


def quote(text: str, focus: Span | None = None) -> str:
    """Block-quote ``text`` verbatim (escaped) with ``text[focus]`` in bold."""
    lines: list[str] = []
    offset = 0
    for line in text.split("\n"):
        span = None
        if focus is not None:
            a, b = max(focus[0] - offset, 0), min(focus[1] - offset, len(line))
            span = (a, b) if a < b else None
        lines.append(_bold(line, span))
        offset += len(line) + 1
    return ">>> " + "\n".join(lines)


def _bold(line: str, span: Span | None) -> str:
    if span is None or not line[span[0] : span[1]].strip():
        return escape(line)
    a, b = span
    while line[a].isspace():  # markers hugging spaces do not render
        a += 1
    while line[b - 1].isspace():
        b -= 1
    # Only the head can start the line; "**" keeps the middle from being read as a heading or list.
    return f"{escape(line[:a])}**{_escape_inline(line[a:b])}**{_escape_inline(line[b:])}"


_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+")
_SPACE = re.compile(r"\s+")


def _units(text: str, start: int, end: int, pattern: re.Pattern[str]) -> list[Span]:
    """Split ``[start, end)`` after each match of ``pattern`` (the separator stays with the left part)."""
    cuts = [m.end() for m in pattern.finditer(text, start, end) if start < m.end() < end]
    bounds = [start, *cuts, end]
    return list(itertools.pairwise(bounds))


def _char_parts(start: int, end: int, fits: Callable[[int, int], bool]) -> list[Span]:
    """Cut at characters: the longest prefix that fits, again and again."""
    parts: list[Span] = []
    while start < end:
        fitting = bisect.bisect_left(range(start + 1, end + 1), True, key=lambda b: not fits(start, b))
        stop = start + max(fitting, 1)
        parts.append((start, stop))
        start = stop
    return parts


def _fitting_units(text: str, start: int, end: int, fits: Callable[[int, int], bool], level: int = 0) -> list[Span]:
    if level == 2:
        return _char_parts(start, end, fits)
    units: list[Span] = []
    for a, b in _units(text, start, end, (_SENTENCE_END, _SPACE)[level]):
        units.extend([(a, b)] if fits(a, b) else _fitting_units(text, a, b, fits, level + 1))
    return units


def split_text(text: str, fits: Callable[[int, int], bool]) -> list[Span]:
    """Cut ``text`` into the fewest consecutive spans that fit, at sentence ends, else spaces, else anywhere."""
    if not text or fits(0, len(text)):
        return [(0, len(text))]
    parts: list[Span] = []
    for a, b in _fitting_units(text, 0, len(text), fits):
        if parts and fits(parts[-1][0], b):
            parts[-1] = (parts[-1][0], b)
        else:
            parts.append((a, b))
    return parts


def excerpt_embeds(excerpt: Excerpt, limit: int = DESCRIPTION_LIMIT) -> list[discord.Embed]:
    """Render one excerpt as an embed, or several when its quote is longer than ``limit`` characters."""
    text = excerpt.text
    focus = (excerpt.focus_start - excerpt.start, excerpt.focus_end - excerpt.start)

    def render(a: int, b: int) -> str:
        span = trim_span(text, a, b)
        a, b = span.start, span.end
        return quote(text[a:b], (focus[0] - a, focus[1] - a))

    parts = split_text(text, lambda a, b: len(render(a, b)) <= limit)
    title = escaped_truncate(excerpt.title, TITLE_LIMIT)
    colour = WEAK_COLOUR if excerpt.weak else ANSWERED_COLOUR
    embeds = []
    for n, (a, b) in enumerate(parts, 1):
        embed = discord.Embed(description=render(a, b), colour=colour)
        if n == 1:
            embed.title = title
            if excerpt.url and excerpt.url.startswith(("http://", "https://")):
                embed.url = excerpt.url
        embed.set_footer(text=_footer(excerpt, n, len(parts)))
        embeds.append(embed)
    return embeds


def _footer(excerpt: Excerpt, part: int, parts: int) -> str:
    bits = [where(excerpt.position), f"article #{excerpt.article_id}"]
    if excerpt.published:
        bits.append(f"published {excerpt.published[:10]}")
    if excerpt.weak:
        bits.append("weak match")
    if parts > 1:
        bits.append(f"part {part} of {parts}")
    return truncate(" · ".join(bits), FOOTER_LIMIT)


def answer_replies(answer: Answer, limit: int = DESCRIPTION_LIMIT, lead: str | None = None) -> list[Reply]:
    """Render an answer as one or more messages: quoted excerpts, or a plain "nothing answers this".

    ``lead`` opens the first message (e.g. which question "More" continues).
    """
    embeds = [embed for excerpt in answer.results for embed in excerpt_embeds(excerpt, limit)]
    notes = [lead] if lead else []
    if answer.widened:
        notes.append(WIDENED)
    if not answer.answered:
        notes.append(WEAK_HEADER if embeds else f"**{NO_ANSWER}**")
    return pack(embeds, "\n".join(notes) or None)


def more_lead(question: str) -> str:
    """Open the message that "More" posts: which question these passages answer."""
    return f"More passages for: *{escaped_truncate(question, 600)}*"


def thread_name(question: str) -> str:
    """Name a follow-up thread after its question (plain text, as Discord shows thread names)."""
    return truncate(" ".join(question.split()), THREAD_NAME_LIMIT) or "Follow-up questions"


def thread_intro(bot_mention: str, reads_messages: bool) -> str:
    """The first message of a follow-up thread: how to ask in it."""
    how = "Ask here" if reads_messages else f"Ask here, mentioning {bot_mention} (I only read messages that do)"
    return f"{how}: I answer from the articles of this answer first, then from all of this server's articles."


def pack(embeds: Sequence[discord.Embed], content: str | None = None) -> list[Reply]:
    """Group embeds into as few messages as fit (ten embeds, 6000 characters each); ``content`` leads."""
    replies: list[Reply] = []
    current: list[discord.Embed] = []
    size = 0
    for embed in embeds:
        if current and (len(current) == EMBEDS_LIMIT or size + len(embed) > EMBED_LIMIT):
            replies.append(Reply(content if not replies else None, current))
            current, size = [], 0
        current.append(embed)
        size += len(embed)
    if current or not replies:
        replies.append(Reply(content if not replies else None, current))
    return replies


# --- managing -----------------------------------------------------------------------------------


def added(result: AddResult) -> str:
    """Say what ``/add`` did."""
    a = result.article
    title = escaped_truncate(a.title, 300)
    if result.duplicate:
        same = "URL" if result.reason == "url" else "text"
        return f"Already here: **{title}** (#{a.id}) has the same {same}, so nothing was added."
    size = f"{plural(a.chunks, 'chunk')}, {plural(a.chars, 'character')}"
    return f"Added **{title}** (#{a.id}): {size}. Ask away with /ask."


def removed(article: Article) -> str:
    return f"Removed **{escaped_truncate(article.title, 300)}** (#{article.id}, {plural(article.chunks, 'chunk')})."


def choice_name(article: Article) -> str:
    """Name an article in an autocomplete list (plain text: Discord shows it unformatted)."""
    return truncate(f"#{article.id} {article.title}", CHOICE_NAME_LIMIT)


_NAME_BUDGET = 120  # per field, so that MAX_ARTICLES_PER_PAGE fields stay under EMBED_LIMIT
_VALUE_BUDGET = 400


def articles_page(articles: Sequence[Article], page: int, pages: int, total: int) -> discord.Embed:
    """List one page of a server's articles, newest first."""
    embed = discord.Embed(title="Articles in this server", colour=INFO_COLOUR)
    if not articles:
        embed.description = "No articles yet: add one with /add url, /add text or /add file."
        return embed
    for article in articles[:MAX_ARTICLES_PER_PAGE]:
        embed.add_field(
            name=escaped_truncate(f"#{article.id} · {article.title}", _NAME_BUDGET),
            value=_article_line(article),
            inline=False,
        )
    embed.set_footer(text=f"Page {page + 1} of {pages} · {plural(total, 'article')}")
    return embed


def _article_line(article: Article) -> str:
    bits = [plural(article.chunks, "chunk"), plural(article.chars, "character"), f"added {article.added_at[:10]}"]
    if article.added_by and article.added_by.isdigit():
        bits[-1] += f" by <@{article.added_by}>"  # renders as a name, and embeds never ping
    line = " · ".join(bits)
    url = article.url or ""
    if url.startswith(("http://", "https://")) and len(url) + len(line) + 1 <= _VALUE_BUDGET:
        line += "\n" + url
    return line


def stats(result: Stats) -> discord.Embed:
    """Show a server's own counts, model, sizes and how its answers were voted (never the shared database's size)."""
    embed = discord.Embed(title="Index statistics", colour=INFO_COLOUR)
    for name, value in (
        ("Articles", f"{result.articles:,}"),
        ("Chunks", f"{result.chunks:,}"),
        ("Sentences", f"{result.sentences:,}"),
        ("Model", truncate(result.model, FIELD_VALUE_LIMIT)),
        ("Dimensions", str(result.dimension or "-")),
        ("Index size", size(result.index_bytes)),
        ("Texts and vectors", size(result.stored_bytes)),
        (f"Votes, last {FEEDBACK_DAYS} days", votes_share(result.votes_up, result.votes_down)),
    ):
        embed.add_field(name=name, value=value)
    return embed


def votes_share(up: int, down: int) -> str:
    """Say how answers were voted, e.g. "75% 👍 (3 of 4 votes)"."""
    if not up + down:
        return "No votes yet"
    return f"{round(100 * up / (up + down))}% \N{THUMBS UP SIGN} ({up:,} of {plural(up + down, 'vote')})"


def size(n: int) -> str:
    """Format a byte count, e.g. ``1.5 MB``."""
    if n < 1024:
        return f"{n:,} bytes"
    value, unit = n / 1024, "KB"
    for bigger in ("MB", "GB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.1f} {unit}"


def rebuild_progress(done: int, total: int) -> str:
    percent = f" ({done * 100 // total}%)" if total else ""
    return f"Re-embedding this server's articles… {done:,} of {plural(total, 'chunk')}{percent}."


def rebuilt(result: RebuildResult) -> str:
    done = f"{plural(result.articles, 'article')}, {plural(result.chunks, 'chunk')}"
    return f"Rebuilt: {done} re-embedded in {result.seconds:.1f} s."


def cooldown(retry_after: float) -> str:
    return f"Slow down: try again in {max(1, round(retry_after + 0.5))} s."


# --- adding from messages -----------------------------------------------------------------------

LINK_LINE_LIMIT = 350  # five links' lines stay well under CONTENT_LIMIT
WATCH_NEEDS_CONTENT = (
    "Watching a channel needs the messages' text: the bot must run with DISCORD_MESSAGE_CONTENT=true and the "
    "Message Content intent turned on in the Developer Portal (Bot page)."
)


def links_added(outcomes: Sequence[tuple[str, AddResult | str]], left_out: int = 0) -> str:
    """Say, link by link, what adding a message's links did: added, already here, or refused and why."""
    if not outcomes:
        return "There is no http(s) link in that message."
    lines = []
    for url, outcome in outcomes:
        if isinstance(outcome, str):
            line = f"Refused <{url}>: {outcome}"
        elif outcome.duplicate:
            line = f"Already here: **{escaped_truncate(outcome.article.title, 200)}** (#{outcome.article.id}) <{url}>"
        else:
            a = outcome.article
            line = f"Added **{escaped_truncate(a.title, 200)}** (#{a.id}, {plural(a.chunks, 'chunk')}) <{url}>"
        lines.append(truncate(line, LINK_LINE_LIMIT))
    if left_out:
        lines.append(f"{plural(left_out, 'more link')} left out: at most {len(outcomes)} from one message.")
    return "\n".join(lines)


def watching(channel_mentions: Sequence[str]) -> str:
    """List the watched channels."""
    if not channel_mentions:
        return "No channel is watched: links are added only by hand (/add url, or Apps > Add article on a message)."
    return "Links posted in these channels are added by themselves: " + ", ".join(channel_mentions)


# --- feeds --------------------------------------------------------------------------------------

FEED_LINE_LIMIT = 300  # one "Added:" line of an announcement
_FEED_NAME_BUDGET = 100
_SAFE_URL = re.compile(r"https?://[^\s<>]+")


def when(stamp: str | None) -> str:
    """A stored UTC time as a Discord timestamp each reader sees in their own time zone ("5 minutes ago")."""
    if not stamp:
        return "never"
    return f"<t:{int(datetime.fromisoformat(stamp).timestamp())}:R>"


def every(minutes: float) -> str:
    """Say how often feeds are polled: "15 minutes", "1 hour"."""
    if minutes >= 60 and minutes % 60 == 0:
        return plural(int(minutes // 60), "hour")
    if minutes == int(minutes):
        return plural(int(minutes), "minute")
    return f"{minutes:g} minutes"


def _feed_name(feed: Feed, limit: int = 200) -> str:
    return escaped_truncate(feed.title or feed.url, limit)


def feed_followed(result: FeedAdded, per_poll: int, minutes: float) -> str:
    """Say what ``/feed add`` did."""
    feed = result.feed
    if result.duplicate:
        return (
            f"Already following **{_feed_name(feed)}** (feed #{feed.id}): nothing changed. To announce its articles "
            "somewhere else, remove it and add it again (what it already brought is not added twice)."
        )
    entries = f", {plural(result.entries, 'entry', 'entries')} now" if result.entries is not None else ""
    announce = f" Each new article is announced in <#{feed.notify}>." if feed.notify else ""
    return (
        f"Following **{_feed_name(feed)}** (feed #{feed.id}{entries}). Its new articles are added every "
        f"{every(minutes)} or so, up to {plural(per_poll, 'article')} a poll; the first ones shortly.{announce}"
    )


def feed_removed(feed: Feed) -> str:
    """Say what ``/feed remove`` did; the articles it brought stay."""
    kept = (
        f" The {plural(feed.added, 'article')} it brought {'stays' if feed.added == 1 else 'stay'} (remove them with "
        "/remove)."
        if feed.added
        else ""
    )
    return f"Stopped following **{_feed_name(feed)}** (feed #{feed.id}).{kept}"


def feed_choice_name(feed: Feed) -> str:
    """Name a feed in an autocomplete list (plain text)."""
    return truncate(f"#{feed.id} {feed.title or feed.url}", CHOICE_NAME_LIMIT)


def _feed_lines(feed: Feed) -> list[tuple[int, str]]:
    """A feed's state, line by line, each with a priority: the lower, the later it is left out for room."""
    lines = [(3, f"{plural(feed.added, 'article')} added · last success {when(feed.last_ok)}")]
    if feed.failures:
        error = escaped_truncate(feed.last_error or "unknown error", 300)
        lines.append((3, f"**Failing:** {plural(feed.failures, 'failure')} in a row, last: {error}"))
        lines.append((2, f"Next try {when(feed.next_poll)} (waits double after each failure, up to a day)"))
    else:
        lines.append((2, f"Next poll {when(feed.next_poll)}"))
    if feed.pending:
        lines.append((1, f"{plural(feed.pending, 'entry', 'entries')} waiting for the next polls"))
    if feed.notify:
        lines.append((1, f"Announces new articles in <#{feed.notify}>"))
    if _SAFE_URL.fullmatch(feed.url):
        lines.append((0, feed.url))
    return lines


def _fit_lines(lines: list[tuple[int, str]], budget: int) -> str:
    """Join the lines, leaving out the least important ones (then cutting) until they fit in ``budget``."""
    kept = list(lines)
    while len("\n".join(text for _, text in kept)) > budget and len(kept) > 1:
        kept.remove(min(kept, key=lambda line: line[0]))
    return truncate("\n".join(text for _, text in kept), budget)


def feeds_list(feeds: Sequence[Feed], limit: int, per_poll: int, minutes: float) -> discord.Embed:
    """List a server's feeds, how each fares, and the limits that apply."""
    embed = discord.Embed(title="Feeds this server follows", colour=INFO_COLOUR)
    footer = (
        f"{len(feeds)} of {plural(limit, 'feed')} · up to {plural(per_poll, 'new article')} per feed a poll · "
        f"polled every {every(minutes)} or so"
    )
    embed.set_footer(text=footer)
    if not feeds:
        embed.description = "No feeds yet: an admin can follow one with /feed add."
        return embed
    shown = feeds if len(feeds) <= FIELDS_LIMIT else feeds[: FIELDS_LIMIT - 1]
    room = EMBED_LIMIT - len(embed.title or "") - len(footer) - 100  # the 100: a last "and N more" field
    budget = min(FIELD_VALUE_LIMIT, room // len(shown) - _FEED_NAME_BUDGET)
    for feed in shown:
        name = escaped_truncate(f"#{feed.id} · {feed.title or feed.url}", _FEED_NAME_BUDGET)
        embed.add_field(name=name, value=_fit_lines(_feed_lines(feed), budget), inline=False)
    if len(shown) < len(feeds):
        embed.add_field(name="…", value=f"and {plural(len(feeds) - len(shown), 'more feed')}", inline=False)
    return embed


def feed_announcements(feed: Feed, articles: Sequence[Article]) -> list[str]:
    """The messages announcing a poll's new articles: "Added: <title>" for each, in as few messages as fit."""
    lines = [f"New from **{_feed_name(feed, 150)}**:"]
    for article in articles:
        link = f" <{article.url}>" if article.url and _SAFE_URL.fullmatch(article.url) else ""
        line = f"Added: **{escaped_truncate(article.title, 200)}** (#{article.id})"
        lines.append(line + (link if len(line) + len(link) <= FEED_LINE_LIMIT else ""))
    messages: list[str] = []
    for line in lines:
        if messages and len(messages[-1]) + 1 + len(line) <= CONTENT_LIMIT:
            messages[-1] += "\n" + line
        else:
            messages.append(line)
    return messages
