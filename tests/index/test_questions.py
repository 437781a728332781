"""Questions as people type them in Discord, and what kind of answer each asks for."""

from __future__ import annotations

import pytest

from index.answer import expected_trait, normalize_question, predicate, traits
from index.errors import EmptyQuestionError
from index.service import Engine


@pytest.mark.parametrize(
    ("typed", "asked"),
    [
        ("@everyone <@123> `who` **claimed** the call happened?", "who claimed the call happened?"),
        ("<@!42> <:pepe:1234567> who is __Helena Marsh__? :thinking:", "who is Helena Marsh?"),
        ("> what did ||the minister|| say? <#99> <@&7>", "what did the minister say?"),
        ("what is snake_case at 10:30:00?", "what is snake_case at 10:30:00?"),
        ("~~when~~ *when* did it   happen\n?", "when when did it happen?"),
    ],
)
def test_chat_markup_is_stripped_before_asking(typed: str, asked: str) -> None:
    assert normalize_question(typed) == asked


def test_a_question_of_nothing_but_mentions_is_empty(engine: Engine) -> None:
    with pytest.raises(EmptyQuestionError):
        engine.ask("<@123> @here :wave:")


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("who claimed the call happened?", "persons"),
        ("Whose idea was the terminal sale?", "persons"),
        ("how many passengers were evacuated?", "numbers"),
        ("acme q2 revenue", "numbers"),
        ("when did she take up the post?", "dates"),
        ("what did the minister say?", None),
        ("who is Fiona Galbraith?", None),
        ("who is the new head of the agency?", "persons"),
        ("why did revenue fall?", None),
    ],
)
def test_the_question_word_says_what_the_answer_must_name(question: str, kind: str | None) -> None:
    assert expected_trait(question) == kind


@pytest.mark.parametrize(
    ("question", "verb"),
    [("who claimed the call happened?", "claim"), ("Who doubts it?", "doubt"), ("who is the new chief?", None)],
)
def test_the_verb_of_a_who_question_is_found(question: str, verb: str | None) -> None:
    assert predicate(question) == verb


def test_people_are_told_from_countries_and_bodies() -> None:
    found = traits(
        "Dmitri Vasko, the director of Veldoria's External Security Bureau, said he had spoken to Ms Marsh.",
        line_start=True,
        line_end=True,
    )
    country = traits("Veldoria has claimed that the Foreign Ministry held a call.", line_start=True, line_end=True)

    assert "dmitri vasko" in found.persons
    assert "ms marsh" in found.persons
    assert "veldoria's external security bureau" in found.groups
    assert country.persons == frozenset()
    assert "foreign ministry" in country.groups
