"""Choosing excerpts: the one to three consecutive sentences inside retrieved chunks that answer best."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from index.lexical import tokenize

MAX_WINDOW = 3

# What chat adds around a question: mentions, channel and role links, custom emoji, :shortcodes:, Markdown.
_CHAT_MARKUP = re.compile(
    r"<(?:@[!&]?|#)\d+>"  # <@123>, <@!123>, <@&123>, <#123>
    r"|<a?:\w+:\d+>"  # <:name:123>, <a:name:123>
    r"|</[\w -]+:\d+>"  # </command:123>
    r"|(?<!\w)@(?:everyone|here)\b"
    r"|(?<![\w:]):[a-z0-9_+-]{2,32}:(?![\w:])"  # :thinking:
    r"|\|\||~~|\*{1,3}|(?<!\w)_{1,3}|_{1,3}(?!\w)|`{1,3}"
    r"|^\s*(?:>{1,3}|#{1,3}|-#)\s",
    re.M,
)


def normalize_question(question: str) -> str:
    """The question as words: without Discord mentions, emoji codes and Markdown, on one line."""
    return re.sub(r" (?=[?!.,;:](?:\s|$))", "", " ".join(_CHAT_MARKUP.sub(" ", question).split()))


@dataclass(frozen=True, slots=True)
class Weights:
    """How the evidence for an excerpt is combined; fixed for all questions."""

    dense: float = 1.0
    lexical: float = 1.0
    prior: float = 0.3
    extra_sentence: float = 0.13
    # A window that starts mid-story ("she said", "he added") leaves the reader asking who.
    dangling_start: float = 0.15
    # A headline or subheading is a label, not an answer.
    heading: float = 0.2
    # The question asks who / when / how many, and the window names no one / no date / no number.
    missing_answer_type: float = 0.2
    # The verb of a "who" question weighs this many times its idf among the question's words.
    predicate: float = 2.0
    # A second sentence that speaks to the question too earns this share of its cosine.
    second: float = 0.3
    # A window that says nothing the question does not (a headline echoing the query) is no answer.
    echo: float = 1.0
    max_chars: int = 400


@dataclass(frozen=True, slots=True)
class Traits:
    """What a sentence offers a reader, judged from its surface.

    The sets hold what the sentence names, lower-cased, so that an answer can be required to add something the
    question does not already say.
    """

    dangling: bool  # leans on an earlier sentence for who is speaking or acting
    heading: bool
    names: bool  # mentions a proper name after its first word
    persons: frozenset[str] = frozenset()  # "dmitri vasko", "mr vasko"
    groups: frozenset[str] = frozenset()  # organisations and places: "foreign ministry", "halvard institute"
    numbers: frozenset[str] = frozenset()
    dates: frozenset[str] = frozenset()


_CLOSED = re.compile(r"[.!?…\"”’')\]]$")
_PERSON_PRONOUN = re.compile(r"\b(he|she|they|him|her|his|them|their)\b", re.I)
_CAPITALIZED = re.compile(r"\b[A-Z][a-z]+")
_OPENERS = frozenset(".!?:;“\"‘'(—–-")
_NUMBER_WORDS = (
    r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|sixty|"
    r"hundred|thousand|million|billion|trillion|dozen|half|third|quarter"
)
_NUMBER = re.compile(rf"\d(?:[\d,.]*\d)?|\b(?:{_NUMBER_WORDS})\b", re.I)
_MONTHS = (
    r"January|February|March|April|May|June|July|August|September|October|November|December|"
    r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec"
)
_DAYS = r"Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
_TIME_WORDS = (
    r"today|yesterday|tomorrow|spring|summer|autumn|winter|decade|century|week|month|year|morning|evening|night"
)
_DATE = re.compile(
    rf"\b(?:1[0-9]{{3}}|20[0-9]{{2}})s?\b|\b(?:{_MONTHS}|{_DAYS})\b|\b\d+(?:st|nd|rd|th) (?:century|millennium)\b"
    rf"|\b(?:{_TIME_WORDS})\b|\d",
    re.I,
)
# The words (lower-cased, whole) that _NUMBER and _DATE can match. In ASCII text without any of them, only their
# digit alternatives can match, in the same order: these shorter patterns find the same, much faster.
_NUMBER_KEYS = frozenset(_NUMBER_WORDS.split("|"))
_DATE_KEYS = frozenset(f"{_MONTHS}|{_DAYS}|{_TIME_WORDS}|millennium".replace("Sept?", "Sep|Sept").lower().split("|"))
_NUMBER_DIGITS = re.compile(r"\d(?:[\d,.]*\d)?", re.I)
_DATE_DIGITS = re.compile(r"\b(?:1[0-9]{3}|20[0-9]{2})s?\b|\d", re.I)
_ASCII_WORD = re.compile(r"[a-z]+")
# A person: a title and a name, or two to four capitalized words none of which names a kind of place or body.
_TITLES = (
    r"Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Professor|Sir|Dame|Lord|Lady|President|Prime Minister|Minister|Secretary|"
    r"Senator|Governor|Mayor|Judge|Justice|Councillor|Chancellor|King|Queen|Prince|Princess|Pope|Saint|St|"
    r"General|Colonel|Captain|Admiral|Rev|Reverend|Bishop|Archbishop|Rabbi|Imam|Sheikh|Chief|Director|Chairman"
)
_CAP = r"(?:[A-Z][a-zà-ÿ]*[a-zà-ÿ](?:[-’'][A-Z]?[a-zà-ÿ]+)*|[A-Z]\.)"
_PARTICLE = r"(?:de|da|di|del|della|van|von|der|den|du|le|la|bin|ibn|al|el|ter|dos|das)"
_NAME_RUN = re.compile(rf"\b{_CAP}(?:\s+(?:{_PARTICLE}\s+)?{_CAP}){{1,3}}\b")
_TITLED = re.compile(rf"\b(?:{_TITLES})\.?\s+{_CAP}(?:\s+{_CAP})*")


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


_GROUP_WORDS = _wordset(
    """
    ministry department bureau institute agency service services council committee commission parliament
    congress senate assembly party union university college school academy company corporation corp ltd inc
    plc group bank court office authority association foundation society club team army navy force forces
    police church hospital museum times post news press media airlines airways airport station bay lake river
    sea ocean mountain mountains mount island islands valley street road avenue square park bridge city county
    state states kingdom republic empire province region district north south east west northern southern
    eastern western central new saint st fort port centre center hall house palace castle cathedral stadium
    arena prize award awards cup league championship games olympics war act treaty revolution age dynasty era
    quay organisation organization network system systems foundation fund trust board nations federation
    railway railways library gallery theatre theater orchestra records studios industries holdings international
    national royal federal united american british european african asian french german chinese russian
    english spanish italian japanese indian australian canadian
    """
)
_NOT_NAMES = _wordset(
    """
    the a an in on at of for to by from with and but or if as after before when while during however although
    this that these those it its he she they we i you his her their our my your there here what who which why
    how where also then yet so since because despite among under over between into through about against
    according following meanwhile later earlier today yesterday tomorrow asked speaking writing
    """
)


def _name_runs(sentence: str) -> tuple[set[str], set[str]]:
    """Split the capitalized runs of a sentence into people and groups (organisations, places)."""
    persons: set[str] = set()
    groups: set[str] = set()
    for match in _TITLED.finditer(sentence):
        persons.add(match.group().lower())
    for match in _NAME_RUN.finditer(sentence):
        words = match.group().split()
        while words and words[0].lower() in _NOT_NAMES:  # "The Ministry", "In Eastmoor"
            words = words[1:]
        if len(words) < 2:
            continue
        run = " ".join(words).lower()
        folded = {w.lower().rstrip(".") for w in words}
        if folded & _GROUP_WORDS or re.search(rf"\b(?:{_MONTHS}|{_DAYS})\b", " ".join(words)):
            groups.add(run)
        elif not any(run in p or p in run for p in persons):
            persons.add(run)
    return persons, groups


@lru_cache(maxsize=32768)
def traits(sentence: str, line_start: bool, line_end: bool, first: bool = False) -> Traits:
    """Judge a sentence; ``line_start``/``line_end`` say whether it begins/ends its line of text, ``first``
    whether it opens the article (a short first line is the headline, full stop or not).

    Cached: the same sentences come up question after question, and a sentence's traits never change.
    """
    names = has_name(sentence)
    persons, groups = _name_runs(sentence)
    words = set(_ASCII_WORD.findall(sentence.lower())) if sentence.isascii() else None
    number = _NUMBER_DIGITS if words is not None and words.isdisjoint(_NUMBER_KEYS) else _NUMBER
    date = _DATE_DIGITS if words is not None and words.isdisjoint(_DATE_KEYS) else _DATE
    return Traits(
        dangling=bool(_PERSON_PRONOUN.search(sentence)) and not names,
        heading=line_start and line_end and (first or not _CLOSED.search(sentence)) and len(sentence) < 150,
        names=names,
        persons=frozenset(persons),
        groups=frozenset(groups),
        numbers=frozenset(m.group().lower() for m in number.finditer(sentence)),
        dates=frozenset(m.group().lower() for m in date.finditer(sentence)),
    )


def has_name(sentence: str) -> bool:
    """Whether a capitalized word stands where only a name would be capitalized (not after a full stop or quote)."""
    for match in _CAPITALIZED.finditer(sentence):
        before = sentence[: match.start()].rstrip()
        if before and before[-1] not in _OPENERS:
            return True
    return False


_NO_TRAITS = Traits(dangling=False, heading=False, names=True)


_QUESTION_WORD = re.compile(r"\b(?:who|whom|whose|what|which|when|where|why|how|is|are|was|were|did|does|do)\b|\?")
_QUANTITY = re.compile(
    r"\b(?:revenue|profits?|loss(?:es)?|sales|prices?|costs?|toll|rates?|salary|budget|population|score|turnover|"
    r"earnings|deficit|debt|valuation|fine|wages?|attendance|casualties|deaths|dead|injured|votes|turnout|"
    r"percentage|share|growth|inflation|unemployment|figures?|total|amount|count)\b"
)


def expected_trait(question: str) -> str | None:
    """Which kind of thing an answer to this question must name, judged by its question word."""
    q = question.lower()
    if re.search(r"\bhow (many|much|long|old|far|big|large|tall|high)\b|\bwhat (percentage|number|proportion)\b", q):
        return "numbers"
    if not _QUESTION_WORD.search(q) and _QUANTITY.search(q):  # "acme q2 revenue", "ferry fire death toll"
        return "numbers"
    if re.search(r"\b(when|what (year|date|day|month|time|century|decade))\b", q):
        return "dates"
    if re.match(r"\s*who (?:is|was|are|were) ", q) and (_TITLED.search(question) or _NAME_RUN.search(question)):
        return None  # "who is Fiona Galbraith?" asks what she is, not for another name
    if re.match(r"\s*(who|whom|whose)\b", q) or re.search(r"\b(by whom|which (person|people|official|company))\b", q):
        return "persons"
    return None


_WHO_VERB = re.compile(r"\s*(?:who|whom)\s+([^\W\d_]+)", re.I)


def predicate(question: str) -> str | None:
    """The verb a "who" question asks about, as a token ("who claimed the call happened?" -> "claim")."""
    match = _WHO_VERB.match(question)
    tokens = tokenize(match.group(1)) if match else []
    return tokens[0] if tokens else None


def _novel(found: frozenset[str], question: str) -> bool:
    """Whether ``found`` holds something the (lower-cased) question does not already say."""
    return any(item not in question for item in found)


@dataclass(slots=True)
class Sentence:
    id: int
    start: int
    end: int
    dense: float
    tokens: frozenset[str]
    prior: float = 0.0
    traits: Traits = _NO_TRAITS


class Candidate(NamedTuple):
    """A scored excerpt: consecutive sentences ``[first, last]`` of one article.

    A named tuple: every window of every question makes one, and a tuple is made several times faster than a
    frozen dataclass.
    """

    article_id: int
    start: int
    end: int
    score: float
    relevance: float
    focus_start: int
    focus_end: int


@dataclass(slots=True)
class ArticleSentences:
    """The sentences of one article that retrieval brought up, in text order."""

    article_id: int
    text: str
    sentences: list[Sentence]


def candidates(
    groups: Sequence[ArticleSentences],
    query_tokens: Sequence[str],
    idf: Callable[[str], float],
    weights: Weights = Weights(),
    text: str = "",
) -> list[Candidate]:
    """Score every window of one to three consecutive sentences of ``groups`` for the question ``text``; best first."""
    question = {t: idf(t) for t in query_tokens}
    ranking = dict(question)
    acting = predicate(text)
    # "who claimed ...": the one who claimed, not someone who doubted; when no retrieved sentence has the verb,
    # doubling it would only drown the words that can tell the sentences apart.
    if acting in ranking and any(acting in s.tokens for g in groups for s in g.sentences):
        ranking[acting] *= weights.predicate
    wanted = expected_trait(text)
    asked = text.lower()
    asked_tokens = frozenset(query_tokens)
    # Coverage: the share of the question's weight (by idf) that a window contains. Which of the question's words a
    # window holds is a bit mask; each mask's coverage is summed once, in the question's order.
    question_items, question_total = list(question.items()), sum(question.values())
    ranking_items, ranking_total = list(ranking.items()), sum(ranking.values())
    covers: dict[int, tuple[float, float]] = {}
    found: list[Candidate] = []
    for group in groups:
        sents = group.sentences
        masks = [sum(1 << n for n, t in enumerate(question) if t in s.tokens) for s in sents]
        extras = [s.tokens - asked_tokens for s in sents]  # what each sentence says that the question does not
        # Per sentence: 0 if it names what the question asks for, 0.5 if only a group for a "who", else 1.
        missing = [_missing((s,), wanted, asked) for s in sents] if wanted else []
        for i, first in enumerate(sents):
            # The window grows one sentence at a time; what it holds is kept up to date rather than recounted.
            mask, extra, heading, lack = 0, frozenset[str](), False, 1.0
            best = first
            prior = top = second = 0.0
            for j in range(i, min(i + MAX_WINDOW, len(sents))):
                if j > i and sents[j].id != sents[j - 1].id + 1:
                    break  # not consecutive in the article
                last = sents[j]
                if last.end - first.start > weights.max_chars and j > i:
                    break
                if j > i and (first.traits.heading or last.traits.heading):
                    break  # a headline is quoted alone or not at all: it labels the story, it does not tell it
                mask |= masks[j]
                if len(extra) <= 1:  # beyond one, only that it is beyond one matters
                    extra = extra | extras[j]
                heading = heading or last.traits.heading
                if j == i:
                    prior, top, second, lack = last.prior, last.dense, float("-inf"), missing[j] if wanted else 1.0
                else:
                    if last.dense > best.dense:
                        best = last  # the first of equal cosines, as max() keeps
                    prior = max(prior, last.prior)
                    if last.dense > top:
                        top, second = last.dense, top
                    elif last.dense > second:
                        second = last.dense
                    if wanted:
                        lack = min(lack, missing[j])
                dense = best.dense
                cover = covers.get(mask)
                if cover is None:
                    cover = covers[mask] = (
                        _share(question_items, question_total, mask),
                        _share(ranking_items, ranking_total, mask),
                    )
                lexical, covered = cover
                relevance = weights.dense * dense + weights.lexical * lexical
                ranked = weights.dense * dense + weights.lexical * covered
                # A second sentence is worth its length when it speaks to the question too (the answer often
                # follows the sentence that repeats the question's words).
                support = weights.second * second if j > i else 0.0
                penalty = weights.extra_sentence * (j - i)
                penalty += weights.dangling_start * first.traits.dangling
                penalty += weights.heading * heading
                if wanted:
                    penalty += weights.missing_answer_type * lack
                if len(extra) <= 1:
                    penalty += weights.echo
                score = ranked + support + weights.prior * prior - penalty
                found.append(Candidate(group.article_id, first.start, last.end, score, relevance, best.start, best.end))
    found.sort(key=_score, reverse=True)
    return found


def _share(items: list[tuple[str, float]], total: float, mask: int) -> float:
    """The share of ``total`` that the words in ``mask`` weigh (bit n: the n-th word), summed in the words' order."""
    return sum(w for n, (_, w) in enumerate(items) if mask >> n & 1) / total if total else 0.0


def _score(candidate: Candidate) -> float:
    return candidate.score


def _missing(window: Sequence[Sentence], wanted: str, asked: str) -> float:
    """How far a window falls short of naming what the question asks for: 0 (it does) to 1 (nothing of the kind).

    Only what the question does not already say counts. A "who" question is half answered by an organisation
    or a place when the window names no person.
    """
    if any(_novel(getattr(s.traits, wanted), asked) for s in window):
        return 0.0
    if wanted == "persons" and any(_novel(s.traits.groups, asked) for s in window):
        return 0.5
    return 1.0


def pick(found: Sequence[Candidate], k: int) -> list[Candidate]:
    """Take the best candidates that do not overlap one another."""
    chosen: list[Candidate] = []
    for cand in found:
        if all(c.article_id != cand.article_id or cand.end <= c.start or cand.start >= c.end for c in chosen):
            chosen.append(cand)
            if len(chosen) == k:
                break
    return chosen


_WORDS = re.compile(r"\S+")


def trim(text: str, start: int, end: int, focus_tokens: Sequence[str], max_chars: int) -> tuple[int, int]:
    """Cut an over-long single sentence to ``max_chars`` around its words that match the question."""
    if end - start <= max_chars:
        return start, end
    words = [m.span() for m in _WORDS.finditer(text, start, end)]
    wanted = set(focus_tokens)
    hits = [n for n, (a, b) in enumerate(words) if wanted & set(tokenize(text[a:b]))]
    centre = hits[len(hits) // 2] if hits else 0
    lo = hi = centre
    while True:
        grown = False
        if hi + 1 < len(words) and words[hi + 1][1] - words[lo][0] <= max_chars:
            hi, grown = hi + 1, True
        if lo > 0 and words[hi][1] - words[lo - 1][0] <= max_chars:
            lo, grown = lo - 1, True
        if not grown:
            break
    return words[lo][0], min(words[hi][1], words[lo][0] + max_chars)
