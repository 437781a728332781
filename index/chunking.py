"""Sentence splitting and sentence-aware chunking with exact character offsets."""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Sequence
from typing import Any

from index.models import Chunk, Span

TokenCounter = Callable[[Sequence[str]], list[int]]

_PARAGRAPH = re.compile(r"[^\n]+")
_WORD = re.compile(r"\S+")


# pysbd's cost per character grows with the length of what it reads (3 µs at 1,000 characters, 20 µs at
# 8,000; a 295,000-character paragraph took 108 s), so a long line is read in pieces of at most this size.
MAX_PIECE_CHARS = 1000
# pysbd also spends about 100 µs on each sentence it finds, however short ("a! a! a!" costs 90 µs a character)
# and as much on each line it is given. So a line with no sentence end before its last word is one sentence
# without asking pysbd, and a text with more than PLAIN_RULE_MIN_ENDS sentence-ending marks, at least one in
# every MIN_PROSE_CHARS_PER_END characters, is not prose (Wikipedia's densest paragraph in XQuAD has one in
# 41) and is split at its sentence ends by a plain rule: pysbd never finds more than one sentence in 20
# characters, or 1,000 in all.
MIN_PROSE_CHARS_PER_END = 20
PLAIN_RULE_MIN_ENDS = 1000
_ENDS = ".!?…"
_CLOSERS = "\"'”’)]"
# A run of sentence-ending marks, its closing quotes or brackets, then a space or the end. The look-behind
# makes only the first mark of a run try, so a long run is scanned once.
_PLAIN_END = re.compile(r"(?<![.!?…])[.!?…]++[\"'”’)\]]*+(?=\s|$)")


@functools.cache
def _segmenter() -> Any:
    """pysbd's English segmenter, built on first use (pysbd is slow to import). Only its ``processor`` is used, which
    makes a new reader per text, so threads can share it."""
    import pysbd
    from pysbd.lang.english import English

    # Each abbreviation as pysbd searches it, with its full stop, and whether it holds a regex character.
    names = [a.strip() for a in English.Abbreviation.ABBREVIATIONS]
    entries = [(name, name + ".", re.escape(name) != name) for name in names]

    class Abbreviations(English.AbbreviationReplacer):
        """pysbd's abbreviation pass, skipping the abbreviations that cannot change a line.

        pysbd tries each of its 188 abbreviations on every line that holds its letters anywhere ("no" is in
        "north"): a regex search, then one substitution per place found. Every substitution turns a "." that
        follows the abbreviation into a marker, so an abbreviation the line never has with a "." after it changes
        nothing. Skipping those keeps the output identical and cut the splitting of XQuAD's 48 articles from
        0.86 s to 0.34 s.
        The check compares lowercased letters, which is what pysbd's case-insensitive search compares except for
        a few characters (``ODD_FOLDING``): a line with one of those, and the abbreviations with a regex character in
        them ("e.g", "u.s"), go the whole way.
        """

        def search_for_abbreviations_in_string(self, text: str) -> str:
            if "." not in text:
                return text
            if not ODD_FOLDING.isdisjoint(text):
                return str(super().search_for_abbreviations_in_string(text))
            lowered = text.lower()
            for stripped, dotted, has_regex in entries:
                if dotted in lowered or (has_regex and stripped in lowered):
                    text = self._search_one(text, stripped)
            return text

        def _search_one(self, text: str, stripped: str) -> str:
            """pysbd's loop body for one abbreviation, as it is."""
            found = re.findall(rf"(?:^|\s|\r|\n){stripped}", text, flags=re.IGNORECASE)
            following = re.findall(r"(?<={" + str(re.escape(stripped)) + "} ).{1}", text)
            for n, match in enumerate(found):
                text = self.scan_for_replacements(text, match, n, following)
            return text

    class FastEnglish(English):
        AbbreviationReplacer = Abbreviations

    segmenter = pysbd.Segmenter(language="en", clean=False)
    segmenter.language_module = FastEnglish
    return segmenter


# Characters that Python's case-insensitive regex matching takes for an ASCII letter although lower() makes
# something else of them (the dotted and dotless i, the long s).
ODD_FOLDING = frozenset("\u0130\u0131\u017f")


def split_sentences(text: str) -> list[Span]:
    """Return the sentences of ``text`` as spans, in order, never crossing a line break.

    Every non-space character of ``text`` lies in exactly one span, and spans never start or end with
    whitespace. Time is linear in the length of ``text``: a line longer than ``MAX_PIECE_CHARS`` is read in
    pieces, each starting where the last whole sentence of the one before ended.
    """
    ends = sum(map(text.count, _ENDS))
    plain = ends > PLAIN_RULE_MIN_ENDS and ends * MIN_PROSE_CHARS_PER_END > len(text)
    spans: list[Span] = []
    for line in _PARAGRAPH.finditer(text):
        start, end = line.span()
        while start < end:
            stop = end if end - start <= MAX_PIECE_CHARS else _cut(text, start, start + MAX_PIECE_CHARS)
            found = _segment(text, start, stop, plain)
            if stop < end and len(found) > 1 and found[-1].start - start >= MAX_PIECE_CHARS // 2:
                # The piece's last sentence may go on past the cut: read it again with what follows. Only when
                # that still moves on by half a piece, so that no character is read more than twice.
                stop = found.pop().start
            spans.extend(found)
            start = stop
    return spans


def _cut(text: str, start: int, limit: int) -> int:
    """Where to end a piece of a long line: at its last space in the second half, or at ``limit``."""
    space = text.rfind(" ", start + MAX_PIECE_CHARS // 2, limit)
    return space if space > start else limit


def _segment(text: str, start: int, end: int, plain: bool) -> list[Span]:
    """Locate the sentences of ``text[start:end]`` in ``text``, trimmed of whitespace: pysbd's, or by the plain
    rule when ``plain``."""
    window = text[start:end]
    body = window.rstrip().rstrip(_CLOSERS).rstrip(_ENDS)
    if not any(mark in body for mark in _ENDS):
        segments = [window]
    elif plain:
        cuts = [0, *(m.end() for m in _PLAIN_END.finditer(window)), len(window)]
        segments = [window[a:b] for a, b in itertools.pairwise(cuts)]
    else:
        # pysbd's own segment() finds each sentence back in the text with a regex made from it, one new regex per
        # sentence: compiling those took half of pysbd's time, and they pushed its own patterns out of re's cache.
        # The text.find below does that job.
        segments = _segmenter().processor(window).process()
    spans: list[Span] = []
    cursor = start
    for segment in segments:
        piece = segment.strip()
        if not piece:
            continue
        found = text.find(piece, cursor, end)
        if found < 0:  # pysbd changed this one; it falls into the gap before the next one found
            continue
        if found > cursor and text[cursor:found].strip():
            spans.append(trim_span(text, cursor, found))
        spans.append(Span(found, found + len(piece)))
        cursor = found + len(piece)
    if text[cursor:end].strip():
        spans.append(trim_span(text, cursor, end))
    return spans


def trim_span(text: str, start: int, end: int) -> Span:
    """Narrow ``[start, end)`` to exclude leading and trailing whitespace."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Span(start, end)


def fit_sentences(
    text: str, sentences: Sequence[Span], count_tokens: TokenCounter, max_tokens: int
) -> tuple[list[Span], list[int]]:
    """Split any sentence longer than ``max_tokens`` at word boundaries; return spans and their token counts."""
    counts = count_tokens([text[s.start : s.end] for s in sentences])
    spans: list[Span] = []
    sizes: list[int] = []
    for span, size in zip(sentences, counts, strict=True):
        if size <= max_tokens:
            spans.append(span)
            sizes.append(size)
            continue
        words = [m.span() for m in _WORD.finditer(text, span.start, span.end)]
        word_sizes = count_tokens([text[a:b] for a, b in words])
        piece_start, piece_size = words[0][0], 0
        previous_end = words[0][0]
        for (a, b), size_of_word in zip(words, word_sizes, strict=True):
            w = min(size_of_word, max_tokens)  # a single absurd "word" is cut by the model; it still gets a piece
            if piece_size and piece_size + w > max_tokens:
                spans.append(Span(piece_start, previous_end))
                sizes.append(piece_size)
                piece_start, piece_size = a, 0
            piece_size += w
            previous_end = b
        spans.append(Span(piece_start, previous_end))
        sizes.append(piece_size)
    return spans, sizes


def chunk_sentences(
    text: str, sentences: Sequence[Span], sizes: Sequence[int], max_tokens: int, overlap_tokens: int
) -> list[Chunk]:
    """Pack whole sentences into chunks of at most ``max_tokens``, repeating up to ``overlap_tokens`` of
    trailing sentences at the start of the next chunk."""
    chunks: list[Chunk] = []
    first = 0
    while first < len(sentences):
        last, total = first, sizes[first]
        while last + 1 < len(sentences) and total + sizes[last + 1] <= max_tokens:
            last += 1
            total += sizes[last]
        chunks.append(
            Chunk(sentences[first].start, sentences[last].end, text[sentences[first].start : sentences[last].end])
        )
        if last + 1 >= len(sentences):
            break
        # Step back over whole sentences for the overlap, but always move forward.
        following, carried = last + 1, 0
        budget = min(overlap_tokens, max_tokens - sizes[last + 1])
        while following - 1 > first and carried + sizes[following - 1] <= budget:
            following -= 1
            carried += sizes[following]
        first = following
    return chunks
