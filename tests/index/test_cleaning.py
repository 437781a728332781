"""Text copied from a news page: the clutter goes, every sentence of the story stays, titles are titles."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from index import cleaning
from index.cleaning import clean_boilerplate
from index.service import Engine
from index.settings import Settings
from index.sources import clean_text, from_bytes, from_text
from tests.index.articles import (
    ALL_ARTICLES,
    SPY_CALL,
    SPY_CALL_CLUTTER,
    SPY_CALL_PASTED,
    SPY_CALL_TITLE,
)

# Original encyclopedia-style paragraphs dense with names and numbers: jusText alone calls text like this
# boilerplate (few stop words), and it must survive.
NAME_HEAVY = """Alumni of the Halvard Institute

Notable alumni include Marta Kowalczyk-Reyes, founder of Brightwater Analytics; Tomasz Ferreira, Nobel laureate \
in chemistry 2011; Aiko Brandt-Osei, CEO of Northgate Shipping; and Lars Mbeki, mayor of Eastmoor 2004–2012.

Sports teams: Eastmoor Rovers (football, 1921), Halvard Hawks (rugby, 1954), Varrow Rowing Club (1899).

In business, notable graduates include Kestrel Bank chair Ingrid Oyelaran, Meridian Foods founder Paulo Szabo, \
and Quayside Media's first editor, Dorothea Fairbairn.
"""


def sentences_of(text: str) -> list[str]:
    return [s for p in clean_text(text).split("\n\n") for s in re.split(r"(?<=[.!?])\s+", p) if s]


@pytest.mark.parametrize("article", [*ALL_ARTICLES, SPY_CALL, NAME_HEAVY], ids=lambda a: a.split("\n")[0][:30])
def test_every_sentence_of_a_clean_article_survives(article: str) -> None:
    cleaned = clean_boilerplate(clean_text(article))

    assert cleaned == clean_text(article)


@pytest.mark.parametrize("one_line", [False, True], ids=["paragraphs", "one line"])
def test_pasted_page_loses_its_clutter_and_keeps_its_story(one_line: bool) -> None:
    pasted = " ".join(SPY_CALL_PASTED.split()) if one_line else SPY_CALL_PASTED

    cleaned = from_text(pasted, Settings(_env_file=None)).text  # type: ignore[call-arg]

    assert [c for c in SPY_CALL_CLUTTER if c in cleaned] == []
    story = sentences_of(SPY_CALL.removeprefix(SPY_CALL_TITLE))
    assert [s for s in story if s not in cleaned] == []


@pytest.mark.parametrize(
    "kept",
    [
        "LONDON (Reuters) - The central bank held its main rate at 4 per cent on Thursday, as expected.",
        "“Read more books and fewer headlines,” the author told the festival audience on Sunday.",
        "The charity said donations had fallen by a third since the spring, and it would cut two posts.",
        "Subscribers to the water company's priority register will receive bottled water first.",
    ],
)
def test_prose_that_resembles_clutter_is_kept(kept: str) -> None:
    text = f"{kept}\n\nThe council will meet again next week to discuss the matter in full."

    assert clean_boilerplate(text) == text


@pytest.mark.parametrize(
    "clutter",
    [
        "Advertisement",
        "Share this article",
        "Sign up to our free Morning Briefing newsletter",
        "Related: Harbour dredging delayed again amid funding row",
        "READ MORE: Tourism figures rise for third year running",
        "The Varrow Queen at her berth in Eastmoor harbour (Photograph: Tobias Lindqvist/AP)",
        "Crowds gather outside the ministry on Friday (AFP via Getty Images)",
        "Our journalism is funded by readers like you. Donate today from just £3 a month.",
    ],
)
def test_each_kind_of_clutter_goes_between_paragraphs(clutter: str) -> None:
    story = "The ferry company was fined £85,000 on Wednesday.\n\nIt said it accepted the tribunal's ruling."
    first, second = story.split("\n\n")

    assert clean_boilerplate(f"{first}\n\n{clutter}\n\n{second}") == story


def test_caption_inside_a_line_goes_without_the_sentences_around_it() -> None:
    line = (
        "The ferry company was fined on Wednesday. open image in gallery The Varrow Queen at her berth "
        "( PA Wire ) It said it accepted the ruling."
    )

    cleaned = clean_text(clean_boilerplate(line))

    assert "PA Wire" not in cleaned
    assert "berth" not in cleaned
    assert "The ferry company was fined on Wednesday." in cleaned
    assert "It said it accepted the ruling." in cleaned


# --- titles -------------------------------------------------------------------------------------


def test_headline_on_the_first_line_is_the_title() -> None:
    article = from_text(SPY_CALL_PASTED, Settings(_env_file=None))  # type: ignore[call-arg]

    assert article.title == SPY_CALL_TITLE


@pytest.mark.parametrize("filename", ["pasted.txt", "article3.txt", "2024-03-14.txt"])
def test_text_without_a_headline_is_titled_by_its_first_sentence(filename: str) -> None:
    body = SPY_CALL_PASTED.split("\n\n", 1)[1]  # the appeal paragraph comes first now

    article = from_bytes(body.encode(), filename, Settings(_env_file=None))  # type: ignore[call-arg]

    assert article.title.startswith("Veldoria has claimed that the new head of Arlen")
    assert len(article.title) <= 100
    assert "support" not in article.title.lower()


def test_a_file_name_with_words_titles_a_text_without_a_headline() -> None:
    body = SPY_CALL_PASTED.split("\n\n", 1)[1]

    article = from_bytes(body.encode(), "veldoria-spy-call.txt", Settings(_env_file=None))  # type: ignore[call-arg]

    assert article.title == "Veldoria spy call"


def test_a_given_title_wins(engine: Engine) -> None:
    added = engine.add_text(SPY_CALL_PASTED, title="Spy call row")

    assert added.article.title == "Spy call row"


def test_no_quote_from_a_pasted_page_carries_its_clutter(engine: Engine) -> None:
    engine.add_text(" ".join(SPY_CALL_PASTED.split()))
    questions = [
        "who claimed the call happened?",
        "who is the new head of the intelligence agency?",
        "what did Vasko say about the border?",
        "when did Marsh become chief?",
        "who doubts the call happened?",
        "what did the foreign ministry say?",
        "how long was the phone call?",
        "what did Marsh warn about in her first speech?",
        "when were the embassies closed?",
        "who is Piotr Lindqvist?",
        "what news agency did Vasko talk to?",
        "has the foreign ministry been asked for comment?",
    ]

    quotes = [r.text for q in questions for r in engine.ask(q, k=3).results]

    assert quotes
    assert [(c, q) for q in quotes for c in SPY_CALL_CLUTTER if c in q] == []


def test_a_page_of_too_many_tags_is_refused_before_parsing(settings: Settings) -> None:
    from index.errors import TooLargeError
    from index.sources import from_html

    page = "<html><body>" + "<p>a</p>" * 40_000 + "</body></html>"

    with pytest.raises(TooLargeError, match="tags"):
        from_html(page, settings)


CLUTTER_PIECES = [
    "Read more: Why the harbour froze",
    "open image in gallery Crowds at the gate (Getty Images)",
    "Advertisement",
    "Related: Markets fall again",
    "Share this article",
    "Sign up to our daily newsletter for the best stories.",
    "LONDON (Reuters) - The bank said",
    "The minister arrives (Photo: Jane Doe/AP)",
    "Supporters cheer. A view of the stadium (AFP via Getty Images) The match began.",
]


@pytest.mark.parametrize("seed", range(6))
def test_long_texts_are_cleaned_window_by_window_exactly_as_in_one_pass(seed: int) -> None:
    # One pass over a whole long text held the GIL for all of it (stalling the bot's event loop): windows must
    # find exactly the same clutter, wherever it falls against their edges.
    rng = random.Random(seed)
    story = [p for article in ALL_ARTICLES for p in article.split("\n\n")]
    paragraphs = []
    for _ in range(300):
        words = rng.choice(story).split(" ")
        words.insert(rng.randrange(len(words) + 1), rng.choice(CLUTTER_PIECES))
        paragraphs.append(" ".join(words))
    text = clean_text(("\n\n" if seed % 2 else " ").join(paragraphs))
    assert len(text) > 5 * cleaning.WINDOW_CHARS
    patterns = [cleaning._LINK_LINE, cleaning._INLINE_LINK, cleaning._GALLERY, cleaning._MARKERS]
    for pattern in patterns:
        assert cleaning._sub(pattern, "\n\n", text) == pattern.sub("\n\n", text)
    caption = cleaning._INLINE_CAPTION
    assert cleaning._sub(caption, cleaning._drop_caption, text) == caption.sub(cleaning._drop_caption, text)


@st.composite
def hinted(draw: st.DrawFn) -> str:
    """A paragraph of the weak hints' words and pieces of them, in any case, with the characters that case-insensitive
    matching folds differently from lower() in place of their letters."""
    pieces = ["newsletter", "newsletters", "we use cookies", "our cookies", "accept all cookies", "cookie policy",
              "cookie settings", "follow us", "©", "all rights reserved", "privacy policy", "terms of use",
              "terms and conditions", "click here", "download our app", "download the app", "cookie", "terms",
              "download", "follow", "news", "privacy", "the", "app"]  # fmt: skip
    words = draw(st.lists(st.sampled_from(pieces), min_size=1, max_size=8))
    text = draw(st.sampled_from([" ", "  ", "-", ""])).join(words)
    text = "".join(draw(st.sampled_from([c, c.upper()])) if c.isalpha() else c for c in text)
    odd = draw(st.sampled_from(["", "i>İ", "i>ı", "s>ſ", "k>\u212a"]))
    return text.replace(*odd.split(">"), 1) if odd else text


@settings(max_examples=400, deadline=None)
@given(paragraph=hinted())
def test_the_weak_hints_are_found_where_their_pattern_finds_them(paragraph: str) -> None:
    # A paragraph without any of their words, lower-cased, is not searched: that may never miss a hint.
    assert cleaning._weak_hint(paragraph) == bool(cleaning._WEAK_HINTS.search(paragraph))
