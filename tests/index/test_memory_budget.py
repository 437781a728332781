"""Collections' in-memory indexes under a memory budget: least recently used dropped, reloaded when asked again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from index.models import Answer
from index.retrieval import EmbeddedRetrieval
from index.service import Engine
from index.settings import Settings
from tests.fakes.embedder import HashEmbedder
from tests.index.articles import FERRY_FIRE, LIBRARY_HOURS, STADIUM_VOTE

QUESTION = "how many passengers were evacuated after the ferry engine fire?"
COLLECTIONS = ("a", "b", "c")


def _retrieval(engine: Engine) -> EmbeddedRetrieval:
    assert isinstance(engine.retrieval, EmbeddedRetrieval)
    return engine.retrieval


def _quotes(answer: Answer) -> list[tuple[int, int, int]]:
    return [(r.article_id, r.start, r.end) for r in answer.results]


@pytest.fixture
def room_for_two(settings: Settings) -> Iterator[Engine]:
    """An engine on three collections of the same articles, with a budget that holds two of them but not three."""
    filling = Engine(settings, embedder=HashEmbedder())
    for collection in COLLECTIONS:
        for text in (FERRY_FIRE, LIBRARY_HOURS, STADIUM_VOTE):
            filling.add_text(text, collection)
    one = _retrieval(filling).load("a").footprint()
    filling.close()
    budget = settings.model_copy(update={"memory_budget_mb": 2.5 * one / (1024 * 1024)})
    engine = Engine(budget, embedder=HashEmbedder())
    yield engine
    engine.close()


def test_asking_a_third_collection_drops_the_least_recently_used(room_for_two: Engine) -> None:
    for collection in COLLECTIONS:
        room_for_two.ask(QUESTION, collection)
    assert _retrieval(room_for_two).loaded_collections() == ["b", "c"]


def test_a_collection_asked_again_is_kept_over_one_asked_before_it(room_for_two: Engine) -> None:
    for collection in ("a", "b", "a", "c"):
        room_for_two.ask(QUESTION, collection)
    assert _retrieval(room_for_two).loaded_collections() == ["a", "c"]


def test_a_dropped_collection_is_reloaded_with_the_same_answers(room_for_two: Engine) -> None:
    first = room_for_two.ask(QUESTION, "a")
    room_for_two.ask(QUESTION, "b")
    room_for_two.ask(QUESTION, "c")
    assert "a" not in _retrieval(room_for_two).loaded_collections()
    again = room_for_two.ask(QUESTION, "a")
    assert _quotes(again) == _quotes(first)
    assert [r.score for r in again.results] == pytest.approx([r.score for r in first.results])


def test_the_collection_in_use_is_kept_even_alone_over_the_budget(settings: Settings) -> None:
    tiny = settings.model_copy(update={"memory_budget_mb": 1e-9})
    engine = Engine(tiny, embedder=HashEmbedder())
    try:
        engine.add_text(FERRY_FIRE, "a")
        engine.add_text(LIBRARY_HOURS, "b")
        assert _retrieval(engine).loaded_collections() == ["b"]
        assert engine.ask(QUESTION, "a").results
        assert _retrieval(engine).loaded_collections() == ["a"]
    finally:
        engine.close()


def test_the_held_footprint_stays_under_the_budget(room_for_two: Engine) -> None:
    retrieval = _retrieval(room_for_two)
    for collection in COLLECTIONS * 2:
        room_for_two.ask(QUESTION, collection)
        assert retrieval.loaded_bytes <= room_for_two.settings.memory_budget_mb * 1024 * 1024
