"""Engine results -> Discord messages: pure functions, no network, every Discord limit respected."""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import discord

from bot.settings import MAX_ARTICLES_PER_PAGE
from index.chunking import trim_span
from index.models import AddResult, Answer, Article, Excerpt, RebuildResult, Stats

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


def answer_replies(answer: Answer, limit: int = DESCRIPTION_LIMIT) -> list[Reply]:
    """Render an answer as one or more messages: quoted excerpts, or a plain "nothing answers this"."""
    embeds = [embed for excerpt in answer.results for embed in excerpt_embeds(excerpt, limit)]
    if answer.answered:
        return pack(embeds)
    return pack(embeds, WEAK_HEADER if embeds else f"**{NO_ANSWER}**")


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
    return f"Added **{title}** (#{a.id}): {a.chunks} chunks, {a.chars:,} characters. Ask away with /ask."


def removed(article: Article) -> str:
    return f"Removed **{escaped_truncate(article.title, 300)}** (#{article.id}, {article.chunks} chunks)."


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
    embed.set_footer(text=f"Page {page + 1} of {pages} · {total} article{'s' * (total != 1)}")
    return embed


def _article_line(article: Article) -> str:
    bits = [f"{article.chunks} chunks", f"{article.chars:,} characters", f"added {article.added_at[:10]}"]
    if article.added_by and article.added_by.isdigit():
        bits[-1] += f" by <@{article.added_by}>"  # renders as a name, and embeds never ping
    line = " · ".join(bits)
    url = article.url or ""
    if url.startswith(("http://", "https://")) and len(url) + len(line) + 1 <= _VALUE_BUDGET:
        line += "\n" + url
    return line


def stats(result: Stats) -> discord.Embed:
    """Show a server's counts, model and index size."""
    embed = discord.Embed(title="Index statistics", colour=INFO_COLOUR)
    for name, value in (
        ("Articles", f"{result.articles:,}"),
        ("Chunks", f"{result.chunks:,}"),
        ("Sentences", f"{result.sentences:,}"),
        ("Model", truncate(result.model, FIELD_VALUE_LIMIT)),
        ("Dimensions", str(result.dimension or "-")),
        ("Index size", size(result.index_bytes)),
        ("Database size", size(result.database_bytes)),
    ):
        embed.add_field(name=name, value=value)
    return embed


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
    return f"Re-embedding this server's articles… {done:,} of {total:,} chunks{percent}."


def rebuilt(result: RebuildResult) -> str:
    return f"Rebuilt: {result.articles:,} articles, {result.chunks:,} chunks re-embedded in {result.seconds:.1f} s."


def cooldown(retry_after: float) -> str:
    return f"Slow down: try again in {max(1, round(retry_after + 0.5))} s."
