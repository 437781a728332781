"""Sentence splitting and sentence-aware chunking with exact character offsets."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache

from index.models import Chunk, Span

TokenCounter = Callable[[Sequence[str]], list[int]]

_PARAGRAPH = re.compile(r"[^\n]+")
_WORD = re.compile(r"\S+")


@lru_cache(maxsize=1)
def _segmenter():  # pysbd is slow to import and build; do it once, on first use
    import pysbd

    return pysbd.Segmenter(language="en", clean=False)


def split_sentences(text: str) -> list[Span]:
    """Return the sentences of ``text`` as spans, in order, never crossing a line break.

    Every non-space character of ``text`` lies in exactly one span, and spans never start or end with
    whitespace.
    """
    spans: list[Span] = []
    for line in _PARAGRAPH.finditer(text):
        cursor, end = line.start(), line.end()
        for segment in _segmenter().segment(line.group()):
            piece = segment.strip()
            if not piece:
                continue
            found = text.find(piece, cursor, end)
            if found < 0:  # pysbd changed the text; keep the rest of the line whole rather than lose it
                break
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
