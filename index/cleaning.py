"""Removing a news page's clutter from text that was copied out of a browser.

A page copied with the mouse carries more than the story: donation and subscription appeals, image captions
with their photo credits, "Read more" links, newsletter and share prompts, "Advertisement" labels and
"Related:" lines. Fetched pages lose all of that in trafilatura; pasted text and uploaded files come here.

The rules, in order (each linear in the text):

1. **Markers** are removed wherever they stand, inside a line too, and leave a paragraph break behind (they
   sit between blocks on the page): "Read more", "Support Now", "Advertisement", "Sign up to our …
   newsletter", share prompts ("Share this article", "Share on Facebook", "Copy link"), "open image in
   gallery" and the caption after it up to its photo credit.
2. **Captions**: a paragraph, or a run of words inside a line with no sentence end of its own, that ends in
   a photo credit in parentheses ("( PA Wire )", "(Getty Images)", "(AFP via Getty Images)") or after
   "Photograph:" / "Photo:" / "Image:". A dateline credit ("LONDON (Reuters) -") is not a caption.
3. **Link lines**: a paragraph that starts with "Related:", "Read more:", "More:", "Read next:", "Most read".
4. **Appeals**: a sentence that asks the reader for support ("your support", "help us", "donate",
   "readers like you", "our journalism", "paywall"…) together with "you"/"we"/"our". A paragraph made of
   such sentences goes whole; inside one long line, the sentences between two appeal sentences go too.
5. **Second opinion**: a paragraph with only weaker hints ("newsletter", "we use cookies", "follow us",
   "©", "all rights reserved", "privacy policy") goes only if jusText's paragraph classifier, which weighs length and
   the share of stop words, also calls it boilerplate. jusText alone is not trusted with plain text: on
   XQuAD's 240 Wikipedia paragraphs it marks four name-heavy ones as boilerplate.

Nothing else is touched: every sentence of an article without clutter survives (tests check it on the
project's articles and on Wikipedia text).
"""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Callable
from functools import lru_cache

from index.chunking import ODD_FOLDING

# --- 1. markers ----------------------------------------------------------------------------------

_CREDIT_WORDS = (
    r"PA|AP|AFP|Reuters|Getty|EPA|EPA-EFE|Wire|Images?|Photos?|Photograph|Shutterstock|Alamy|Bloomberg|"
    r"Press Association|Xinhua|Anadolu|Pool|Handout|Courtesy|Supplied|SWNS|Rex|Featureflash|Sipa|UPI|"
    r"Associated Press|dpa|NurPhoto|Kyodo|TASS|WireImage|Corbis"
)
# "( PA Wire )", "(Getty Images)", "(AFP via Getty Images)", "(Image: Reuters)", "(Photo: Jane Doe/AP)"
_CREDIT = rf"\(\s*[^()\n]{{0,40}}?\b(?:{_CREDIT_WORDS})\b[^()\n]{{0,40}}\)"
_GALLERY = re.compile(rf"open image in gallery\b(?:[^\n]{{0,400}}?{_CREDIT})?", re.I)
_MARKERS = re.compile(
    r"\bRead more\b(?![ \t]+[a-z])(?:[ \t]*:)?"
    r"|\bREAD MORE\b(?:[ \t]*:)?"
    r"|\bSupport (?:Now|now)\b"
    r"|\b(?:Advertisement|ADVERTISEMENT)\b(?=\s*(?:$|[A-Z“\"‘]))"
    r"|\b(?:Sign up|Subscribe)(?: now)? (?:to|for) (?:our|the)\b[^.\n]{0,80}?\bnewsletters?\b"
    r"(?:[^.\n]{0,80}?(?=\s[A-Z“\"‘])|[^.\n]{0,60}\.?)"
    r"|\bShare (?:this (?:article|story)|on (?:Facebook|Twitter|X|WhatsApp|LinkedIn|Reddit|Email|Bluesky)"
    r"|via (?:Email|WhatsApp))\b"
    r"|\b(?:Copy link|Skip to (?:main )?content|Listen to this article|Already a subscriber\? Log in)\b",
)

# --- 2. captions ----------------------------------------------------------------------------------

_CREDIT_AT_END = re.compile(
    rf"(?:{_CREDIT}|\b(?:Photograph|Photo|Image|Picture|Credit)s?:[ \t]*[^.\n]{{1,80}})[ \t]*$", re.I
)
# Inside a line: words with no sentence end among them, then a credit, then a new sentence or the end.
_INLINE_CAPTION = re.compile(rf"(?:^|(?<=[.!?”\"’)])\s)[^.!?\n]{{3,300}}?{_CREDIT}(?=\s+[A-Z“\"‘]|\s*$)", re.M)
_DATELINE_AFTER = re.compile(r"\s*[-–—]")

# --- 3. link lines -------------------------------------------------------------------------------

_LINK_PREFIX = r"(?:Related|Read more|READ MORE|More|Read next|Most read|Recommended|Watch)\s*[:|]"
_LINK_LINE = re.compile(rf"^{_LINK_PREFIX}[^\n]*$", re.M)
# Inside a line the linked headline has no full stop of its own: it runs to an opening quote, or to a capital
# that follows a lower-case word and is followed by one ("... border drones Relations between ...").
_INLINE_LINK = re.compile(
    rf"\b{_LINK_PREFIX}[ \t]*(?:[^.!?\n“\"]{{0,150}}?(?=[ \t]+(?:[“\"]|(?<=[a-z,] )[A-Z][a-z’']+[ \t]+[a-z]))|)"
)

# --- 4. appeals ----------------------------------------------------------------------------------

_APPEAL = re.compile(
    r"\b(?:your|our) (?:support|donations?|contributions?|subscriptions?|generosity)\b"
    r"|\b(?:support|fund|back) (?:us|our (?:journalism|reporting|work|journalists))\b"
    r"|\bhelp(?:s|ing)? (?:us|keep)\b|\breaders like you\b|\b(?:donate|subscribe|contribute)\b"
    r"|\bour (?:independent |quality )?(?:journalism|reporting|journalists|newsroom|reporters)\b"
    r"|\bpaywalls?\b|\b(?:free|open|available) (?:for|to) (?:everyone|all)\b|\bas little as\b"
    r"|\b(?:sign up|log in|register) (?:now|today|here|for free)\b",
    re.I,
)
_ADDRESSED = re.compile(r"\b(?:you|your|we|us|our)\b", re.I)
_SENTENCE_END = re.compile(r"[.!?…][”\"’)]*(\s+)(?=[“\"‘(]?[A-Z0-9])")
SANDWICH_GAP = 3  # sentences between two appeal sentences that go with them

# --- 5. second opinion ---------------------------------------------------------------------------

_WEAK_HINTS = re.compile(
    r"\bnewsletters?\b|\b(?:we use|accept(?: all)?|our) cookies\b|\bcookie (?:policy|settings)\b|\bfollow us\b"
    r"|©|\ball rights reserved\b|\bprivacy policy\b"
    r"|\bterms (?:of use|and conditions)\b|\bclick here\b|\bdownload (?:our|the) app\b",
    re.I,
)
# Every match of _WEAK_HINTS holds one of these once lower-cased, unless it has a character that case-insensitive
# matching folds otherwise (ODD_FOLDING): the regex is not run on a paragraph with none of them. Searching every
# paragraph was half of the cleaning (32 ms of 70 on XQuAD's 48 articles).
_WEAK_KEYS = (
    "newsletter",
    "cookie",
    "follow us",
    "©",
    "all rights reserved",
    "privacy policy",
    "terms ",
    "click here",
    "download ",
)


def _weak_hint(paragraph: str) -> bool:
    lowered = paragraph.lower()
    if ODD_FOLDING.isdisjoint(paragraph) and not any(key in lowered for key in _WEAK_KEYS):
        return False
    return bool(_WEAK_HINTS.search(paragraph))


# A regular expression holds the GIL for its whole call, so over a whole long text it stalls every other thread
# (the bot's event loop too): _INLINE_CAPTION alone took 170 ms over 300,000 characters. The patterns above are run
# over windows of WINDOW_CHARS instead. Each match, with what its look-arounds read, spans far fewer than
# MARGIN_CHARS (at most some 700 characters, in text whose runs of spaces clean_text has shortened), so a window
# that may read MARGIN_CHARS past its end finds exactly the matches that a pass over the whole text finds there.
WINDOW_CHARS = 4000
MARGIN_CHARS = 2000


def _sub(pattern: re.Pattern[str], replace: str | Callable[[re.Match[str]], str], text: str) -> str:
    """``pattern.sub(replace, text)``, window by window."""
    if len(text) <= WINDOW_CHARS + MARGIN_CHARS:
        return pattern.sub(replace, text)
    pieces: list[str] = []
    copied = start = 0  # text[:copied] is in pieces; the next window starts at start
    while start < len(text):
        cut = min(start + WINDOW_CHARS, len(text))
        for match in pattern.finditer(text, start, min(cut + MARGIN_CHARS, len(text))):
            if match.start() >= cut:
                break
            pieces += [text[copied : match.start()], replace(match) if callable(replace) else match.expand(replace)]
            copied = match.end()
        start = max(cut, copied)
    pieces.append(text[copied:])
    return "".join(pieces)


def clean_boilerplate(text: str) -> str:
    """Return ``text`` (paragraphs separated by blank lines) without the page clutter described above."""
    text = _sub(_LINK_LINE, "", text)
    text = _sub(_INLINE_LINK, "\n\n", text)
    text = _sub(_GALLERY, "\n\n", text)
    text = _sub(_MARKERS, "\n\n", text)
    text = _sub(_INLINE_CAPTION, _drop_caption, text)
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text)]
    kept = [_without_appeals(p) for p in paragraphs if p and not _is_clutter(p)]
    kept = [p for p in kept if p]
    weak = [n for n, p in enumerate(kept) if _weak_hint(p)]
    if weak:
        verdicts = _justext_bad(kept)
        kept = [p for n, p in enumerate(kept) if not (n in weak and verdicts[n])]
    return "\n\n".join(kept)


def _drop_caption(match: re.Match[str]) -> str:
    following = match.string[match.end() : match.end() + 3]
    if _DATELINE_AFTER.match(following):  # "LONDON (Reuters) - ...": a dateline, keep it
        return match.group()
    lead = match.group()[: len(match.group()) - len(match.group().lstrip())]
    return lead + "\n\n"


def _is_clutter(paragraph: str) -> bool:
    if len(paragraph) <= 400 and _CREDIT_AT_END.search(paragraph) and len(sentences(paragraph)) <= 3:
        return not _DATELINE_AFTER.match(paragraph[-3:])
    return False


def sentences(paragraph: str) -> list[str]:
    """Split a paragraph roughly into sentences: enough to decide what to drop (kept text stays verbatim)."""
    pieces: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(paragraph):
        pieces.append(paragraph[start : match.start(1)].strip())
        start = match.end(1)
    pieces.append(paragraph[start:].strip())
    return [p for p in pieces if p]


def _is_appeal(sentence: str) -> bool:
    return bool(_APPEAL.search(sentence) and _ADDRESSED.search(sentence))


def _without_appeals(paragraph: str) -> str:
    """Drop appeal sentences (and what lies between two of them); drop the paragraph if it is mostly appeal."""
    parts = sentences(paragraph)
    appeals = [n for n, s in enumerate(parts) if _is_appeal(s)]
    if not appeals:
        return paragraph
    if len(appeals) * 2 >= len(parts) or len(parts) <= 2:
        return ""
    drop = set(appeals)
    for a, b in itertools.pairwise(appeals):
        if b - a - 1 <= SANDWICH_GAP:
            drop.update(range(a, b))
    return " ".join(s for n, s in enumerate(parts) if n not in drop)


@lru_cache(maxsize=1)
def _stoplist() -> frozenset[str]:
    import justext

    return frozenset(justext.get_stoplist("English"))


def _justext_bad(paragraphs: list[str]) -> list[bool]:
    """jusText's verdict on each paragraph (True = boilerplate), with its context rules."""
    import justext

    page = "<html><body>" + "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs) + "</body></html>"
    found = justext.justext(page.encode(), _stoplist())
    if len(found) != len(paragraphs):  # it merged or split something: give no opinion rather than a wrong one
        return [False] * len(paragraphs)
    return [p.class_type != "good" for p in found]
