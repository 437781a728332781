"""Answers from the real packaged model on original news articles: the right sentence, from the right article."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from index.embedding import SentenceTransformerEmbedder
from index.service import Engine
from index.settings import Settings
from tests.index.articles import (
    BAKERY_STRIKE,
    FERRY_FIRE,
    LIBRARY_HOURS,
    PHONE_CALL,
    PHONE_CALL_TITLE,
    SPY_CALL,
    SPY_CALL_CLUTTER,
    SPY_CALL_PASTED,
    STADIUM_VOTE,
)

CLAIMANT = "Dmitri Vasko, the director of Veldoria's External Security Bureau, said he had spoken to Helena Marsh"

CLAIM = (
    "Deputy Transport Minister Rosalind Achterberg told the committee on Tuesday that she had spoken to the port "
    "authority's chief executive, Marek Szymborski, by telephone on the evening of 3 March."
)


@pytest.fixture(scope="module")
def newsroom(
    tmp_path_factory: pytest.TempPathFactory, real_embedder: SentenceTransformerEmbedder
) -> Iterator[tuple[Engine, dict[str, int]]]:
    """The real model over five articles; the phone-call story among them."""
    data = tmp_path_factory.mktemp("quality") / "data"
    engine = Engine(Settings(_env_file=None, data_dir=data), embedder=real_embedder)  # type: ignore[call-arg]
    ids = {
        name: engine.add_text(text).article.id
        for name, text in [
            ("phone", PHONE_CALL),
            ("ferry", FERRY_FIRE),
            ("library", LIBRARY_HOURS),
            ("stadium", STADIUM_VOTE),
            ("bakery", BAKERY_STRIKE),
            ("spy", SPY_CALL),
        ]
    }
    yield engine, ids
    engine.close()


def test_who_claimed_the_call_happened_quotes_the_minister_first(cli_phone_answer: dict) -> None:
    """The issue's acceptance test: through the CLI, the first excerpt names the person who made the claim."""
    top = cli_phone_answer["results"][0]
    assert top["title"] == PHONE_CALL_TITLE
    assert CLAIM in top["excerpt"], top["excerpt"]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        pytest.param(
            "who denied that the call took place?",
            "Oyelaran-Fitch",
            marks=pytest.mark.xfail(
                reason="known limit: the denial is worded 'contradicted ... no call took place'; the opposition's "
                "'either the call took place or it did not' matches the words better",
                strict=True,
            ),
        ),
        ("on what date was the call said to have happened?", "3 March"),
        pytest.param(
            "what did the minister and the port chief discuss on the call?",
            "dredging",
            marks=pytest.mark.xfail(
                reason="known limit: the answer shares only 'discussed' with the question, while the sentences "
                "naming the minister, the port chief and the call match it better",
                strict=True,
            ),
        ),
        ("who said he did not know whether the call happened?", "Szymborski"),
        ("who wants the phone records published by Friday?", "Fiona Galbraith"),
        ("how much is the container terminal sale worth?", "£340 million"),
        ("when will the committee question the minister again?", "14 March"),
    ],
    ids=["who-denied", "when", "what-discussed", "who-did-not-know", "who-wants-records", "how-much", "next-hearing"],
)
def test_the_top_excerpt_answers_a_question_about_the_call(
    newsroom: tuple[Engine, dict[str, int]], question: str, expected: str
) -> None:
    engine, ids = newsroom
    answer = engine.ask(question)
    assert answer.answered
    top = answer.results[0]
    assert top.article_id == ids["phone"]
    assert expected in top.text, top.text


@pytest.mark.parametrize(
    "question",
    [
        "what is the best recipe for lemon drizzle cake?",
        "how do I fix a puncture on a bicycle tyre?",
        "which planet has the most moons?",
    ],
)
def test_an_off_topic_question_is_reported_as_not_answered(
    newsroom: tuple[Engine, dict[str, int]], question: str
) -> None:
    answer = newsroom[0].ask(question)
    assert not answer.answered
    assert answer.results, "the closest passages are still shown"
    assert all(r.weak for r in answer.results)


@pytest.mark.parametrize(
    ("question", "article"),
    [
        ("how many passengers had to leave the ferry?", "ferry"),
        ("who chaired the maritime tribunal?", "ferry"),
        ("will libraries open at the weekend?", "library"),
        ("how many new librarians will be hired?", "library"),
        ("how many seats will the new football ground have?", "stadium"),
        ("what will happen to the old ground on Mill Lane?", "stadium"),
        ("what pay rise were the night-shift bakers offered?", "bakery"),
        ("why were supermarket shelves empty?", "bakery"),
        ("did the deputy minister phone the head of the port?", "phone"),
    ],
)
def test_the_right_article_comes_first(newsroom: tuple[Engine, dict[str, int]], question: str, article: str) -> None:
    engine, ids = newsroom
    assert engine.ask(question).results[0].article_id == ids[article]


@pytest.mark.parametrize(
    "question",
    [
        "who claimed the call happened?",
        "Who claimed that the phone call took place?",
        "@everyone <@123456789012345678> `who` **claimed** the call happened? :thinking:",
    ],
)
def test_who_claimed_names_the_official_not_only_the_country(
    newsroom: tuple[Engine, dict[str, int]], question: str
) -> None:
    """"Veldoria has claimed ..." names a country; the next sentence names the man who said it. Both are quoted."""
    engine, ids = newsroom
    top = engine.ask(question).results[0]
    assert top.article_id == ids["spy"]
    assert CLAIMANT in top.text, top.text


def test_who_doubts_it_names_the_analyst(newsroom: tuple[Engine, dict[str, int]]) -> None:
    top = newsroom[0].ask("who doubts that the call happened?").results[0]
    assert "Piotr Lindqvist" in top.text, top.text


def test_a_pasted_page_answers_who_claimed_without_its_clutter(real_engine: Engine) -> None:
    real_engine.add_text(" ".join(SPY_CALL_PASTED.split()))  # as an old client's one-line option delivers it
    results = real_engine.ask("who claimed the call happened?").results
    assert CLAIMANT in results[0].text, results[0].text
    assert [(c, r.text) for r in results for c in SPY_CALL_CLUTTER if c in r.text] == []


SNIPPETS = [
    "Halvard Foods Q2 revenue.\n\nHalvard Foods reported second-quarter revenue of $6.04 billion on Thursday, up 8 per "
    "cent from a year earlier, as sales of frozen meals rose.",
    "Varrow ferry fire death toll.\n\nThree people died and 41 were injured in the fire aboard the Varrow Queen, the "
    "coastguard said, revising earlier figures.",
    "Kestrel Bank chief executive resigns.\n\nIngrid Oyelaran stepped down as chief executive of Kestrel Bank on "
    "Friday after the lender disclosed losses of £220 million on commercial property loans.",
    "Norbridge mayor election result.\n\nPriya Venkataraman won the Norbridge mayoral election with 52 per cent of the "
    "vote on a turnout of 38 per cent.",
]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Halvard Foods Q2 revenue", "$6.04 billion"),
        ("varrow ferry fire death toll", "Three people died"),
        ("kestrel bank chief executive", "Ingrid Oyelaran"),
        ("norbridge turnout", "38 per cent"),
    ],
)
def test_a_keyword_query_quotes_the_story_not_the_headline_that_echoes_it(
    real_engine: Engine, query: str, expected: str
) -> None:
    for snippet in SNIPPETS:
        real_engine.add_text(snippet)
    top = real_engine.ask(query).results[0]
    assert expected in top.text, top.text
    assert not top.text.endswith(("revenue.", "toll.", "resigns.", "result."))  # never the headline


def test_who_is_a_named_person_describes_that_person(newsroom: tuple[Engine, dict[str, int]]) -> None:
    top = newsroom[0].ask("Who is Fiona Galbraith?").results[0]
    assert top.text.startswith("The opposition's transport spokesperson, Fiona Galbraith"), top.text
