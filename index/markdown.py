"""Markdown to plain text in time linear in its length: the markup a quote must not carry goes, the words stay.

Hand-written because the parsers tried are slow on hostile input: markdown-it-py spends about 60 µs a
character on a run of ``![`` (12 s for 200 KB, 5 minutes at the upload cap) and mistune is quadratic on
``*a *a *a``. Nothing here needs a parse tree, only to know which characters are markup:

- blocks, line by line: ATX and setext heading marks, block quote marks, thematic breaks, bullet list
  marks, code fences and link reference definitions go; every heading, list item and code block becomes a
  paragraph of its own;
- inline, in one left-to-right pass per paragraph with stacks of open brackets and emphasis runs (the
  shape of CommonMark's delimiter algorithm): emphasis marks and backslash escapes go; links keep their
  text; images go whole; code spans keep their content.

Every scan is bounded: a code span's closing run is found in per-length lists of backtick runs, each
walked forward once; a link destination is looked for within ``MAX_DESTINATION_CHARS`` and a reference
label within ``MAX_LABEL_CHARS``. Emphasis never opens or closes inside a word, for ``*`` as for ``_``,
so ``2*3*4`` and ``max_download_bytes`` stay as written.
"""

from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass

MAX_DESTINATION_CHARS = 2048  # a link's "(url "title")"; longer is not taken for a link
MAX_LABEL_CHARS = 999  # CommonMark's limit on a link label
_MAX_PAREN_STEPS = 4  # how many ")" a destination with "(" in it may look past

_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r" {0,3}#{1,6}(?:[ \t]+|$)")
_SETEXT = re.compile(r" {0,3}=+[ \t]*$")
_QUOTE = re.compile(r" {0,3}> ?")
_BULLET = re.compile(r"[ \t]*[-+*][ \t]+")
_DEFINITION = re.compile(r" {0,3}\[([^\[\]\n]{1,999})\]:")
_INLINE_SPECIAL = re.compile(r"[\\`*_\[\]!]")
_BACKTICKS = re.compile(r"`+")
_ASCII_PUNCTUATION = frozenset(string.punctuation)


def to_text(markdown: str) -> str:
    """Return the text of a Markdown document: paragraphs separated by blank lines, without markup."""
    blocks: list[tuple[bool, str]] = []  # (is inline Markdown, raw text), in order
    references: set[str] = set()
    paragraph: list[str] = []
    code: list[str] = []
    fence = ""

    def end_paragraph() -> None:
        if paragraph:
            blocks.append((True, "\n".join(paragraph)))
            paragraph.clear()

    for raw in markdown.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = _unquote(raw)
        if fence:
            if line.strip() and line.strip().strip(fence[0]) == "" and len(line.strip()) >= len(fence):
                blocks.append((False, "\n".join(code)))
                code.clear()
                fence = ""
            else:
                code.append(line)
            continue
        opening = _FENCE.match(line)
        if opening and not (opening.group(1)[0] == "`" and "`" in line[opening.end() :]):
            end_paragraph()
            fence = opening.group(1)
            continue
        if not line.strip() or _is_rule(line) or (paragraph and _SETEXT.match(line)):
            end_paragraph()
            continue
        heading = _HEADING.match(line)
        if heading:
            end_paragraph()
            blocks.append((True, _without_closing_hashes(line[heading.end() :])))
            continue
        definition = _DEFINITION.match(line)
        if definition and not paragraph:
            references.add(_label(definition.group(1)))
            continue
        bullet = _BULLET.match(line)
        if bullet:
            end_paragraph()
            line = line[bullet.end() :]
        paragraph.append(line)
    end_paragraph()
    if code:
        blocks.append((False, "\n".join(code)))
    texts = (_Inline(text, references).run() if inline else text for inline, text in blocks)
    return "\n\n".join(text for text in texts if text.strip())


def _unquote(line: str) -> str:
    """Drop the block quote marks ("> > ") at the start of a line."""
    position = 0
    while match := _QUOTE.match(line, position):
        position = match.end()
    return line[position:]


def _is_rule(line: str) -> bool:
    """Whether a line is a thematic break: three or more of one of ``-*_``, spaces allowed between."""
    if len(line) - len(line.lstrip(" ")) > 3:
        return False
    marks = line.replace(" ", "").replace("\t", "")
    return len(marks) >= 3 and marks[0] in "-*_" and marks.count(marks[0]) == len(marks)


def _without_closing_hashes(heading: str) -> str:
    """``Title ##`` -> ``Title``; a ``#`` that is part of the words (``C#``) stays."""
    text = heading.rstrip()
    bare = text.rstrip("#")
    return bare.rstrip() if bare != text and (not bare or bare[-1] in " \t") else text


def _label(text: str) -> str:
    """A link label as references compare it: case and runs of spaces do not matter."""
    return " ".join(text.casefold().split())


def _is_punctuation(char: str) -> bool:
    return char in _ASCII_PUNCTUATION or unicodedata.category(char)[0] in "PS"


@dataclass(slots=True)
class _Opener:
    """An open ``[`` or ``![`` (``image``), or an emphasis run that may still open (``count`` marks left)."""

    index: int  # its piece in the output
    position: int  # where it ends in the text
    image: bool = False
    count: int = 0


class _Inline:
    """One paragraph's inline markup removed, in a single pass (see the module's docstring)."""

    def __init__(self, text: str, references: set[str]) -> None:
        self.text = text
        self.references = references
        self.out: list[str] = []
        self.brackets: list[_Opener] = []
        self.emphasis: dict[str, list[_Opener]] = {"*": [], "_": []}
        # Backtick runs by length: where each starts, and how far the scan has walked through them.
        self.backticks: dict[int, list[int]] = {}
        self.walked: dict[int, int] = {}
        for run in _BACKTICKS.finditer(text):
            self.backticks.setdefault(len(run.group()), []).append(run.start())

    def run(self) -> str:
        text, position = self.text, 0
        while match := _INLINE_SPECIAL.search(text, position):
            start = match.start()
            self.out.append(text[position:start])
            char = text[start]
            if char == "\\":
                position = self._escape(start)
            elif char == "`":
                position = self._code(start)
            elif char == "!" and text.startswith("[", start + 1):
                self.brackets.append(_Opener(len(self.out), start + 2, image=True))
                self.out.append("![")
                position = start + 2
            elif char == "[":
                self.brackets.append(_Opener(len(self.out), start + 1))
                self.out.append("[")
                position = start + 1
            elif char == "]":
                position = self._close_bracket(start)
            elif char in "*_":
                position = self._emphasis(start)
            else:
                self.out.append(char)
                position = start + 1
        self.out.append(text[position:])
        return "".join(self.out)

    def _escape(self, start: int) -> int:
        following = self.text[start + 1 : start + 2]
        if following in _ASCII_PUNCTUATION:
            self.out.append(following)
            return start + 2
        self.out.append("\n" if following == "\n" else "\\")  # a backslash before a line end is a line break
        return start + (2 if following == "\n" else 1)

    def _code(self, start: int) -> int:
        text = self.text
        end = start
        while end < len(text) and text[end] == "`":
            end += 1
        # The closing run is the next run of exactly this length. Openers come in text order, so the walk
        # through each length's runs only moves forward.
        starts = self.backticks.get(end - start, [])
        closing = self.walked.get(end - start, 0)
        while closing < len(starts) and starts[closing] <= start:
            closing += 1
        self.walked[end - start] = closing
        if closing >= len(starts):
            self.out.append(text[start:end])
            return end
        close = starts[closing]
        content = text[end:close].replace("\n", " ")
        if len(content) > 2 and content[0] == " " and content[-1] == " " and content.strip():
            content = content[1:-1]
        self.out.append(content)
        return close + (end - start)

    def _close_bracket(self, start: int) -> int:
        if not self.brackets:
            self.out.append("]")
            return start + 1
        opener = self.brackets.pop()
        end = self._link_end(opener, start)
        if end is None:
            self.out.append("]")
            return start + 1
        if opener.image:  # an image quotes nothing: its alt text goes with it
            del self.out[opener.index :]
            for stack in self.emphasis.values():
                while stack and stack[-1].index >= opener.index:
                    stack.pop()
        else:
            self.out[opener.index] = ""
        return end

    def _link_end(self, opener: _Opener, close: int) -> int | None:
        """Where the link or image whose text ends at ``close`` ends, or None when this ``]`` closes no link."""
        text, after = self.text, close + 1
        if text.startswith("(", after):
            limit = min(len(text), after + MAX_DESTINATION_CHARS)
            end = text.find(")", after, limit)
            unmatched = text.count("(", after + 1, end) if end >= 0 else 0
            for _ in range(_MAX_PAREN_STEPS):
                if end < 0 or not unmatched:
                    break
                following = text.find(")", end + 1, limit)
                unmatched += text.count("(", end + 1, following) - 1 if following >= 0 else 0
                end = following
            return end + 1 if end >= 0 and not unmatched else None
        if not self.references:
            return None
        if text.startswith("[", after):  # [text][label] or [text][]
            end = text.find("]", after + 1, after + 2 + MAX_LABEL_CHARS)
            if end >= 0 and text.find("[", after + 1, end) < 0:
                if end > after + 1:
                    label = text[after + 1 : end]
                elif close - opener.position <= MAX_LABEL_CHARS:
                    label = text[opener.position : close]
                else:
                    label = ""
                if label and _label(label) in self.references:
                    return end + 1
        if close - opener.position <= MAX_LABEL_CHARS and _label(text[opener.position : close]) in self.references:
            return after  # [label] alone
        return None

    def _emphasis(self, start: int) -> int:
        text, mark = self.text, self.text[start]
        end = start
        while end < len(text) and text[end] == mark:
            end += 1
        before = text[start - 1] if start else " "
        after = text[end] if end < len(text) else " "
        left = not after.isspace() and (not _is_punctuation(after) or before.isspace() or _is_punctuation(before))
        right = not before.isspace() and (not _is_punctuation(before) or after.isspace() or _is_punctuation(after))
        can_open = left and (not right or _is_punctuation(before))
        can_close = right and (not left or _is_punctuation(after))
        index, left_over = len(self.out), end - start
        self.out.append(mark * left_over)
        stack = self.emphasis[mark]
        while can_close and left_over and stack:
            opener = stack[-1]
            used = min(opener.count, left_over)
            opener.count -= used
            left_over -= used
            self.out[opener.index] = mark * opener.count
            if not opener.count:
                stack.pop()
        self.out[index] = mark * left_over
        if can_open and left_over:
            stack.append(_Opener(index, end, count=left_over))
        return end
