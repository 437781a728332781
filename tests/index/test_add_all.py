"""Adding several articles in one call (``Engine.add_all``): the same articles as one by one, fewer model calls."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from index import sources
from index.errors import NoTextError, UnsupportedContentError, UserInputError
from index.models import AddResult, ExtractedArticle
from index.service import Engine
from index.settings import Settings
from tests.fakes.embedder import HashEmbedder
from tests.index.articles import BAKERY_STRIKE, FERRY_FIRE, LIBRARY_HOURS, NEWS_PAGE, PHONE_CALL, STADIUM_VOTE
from tests.index.local_server import LocalServer, respond

TEXTS = [PHONE_CALL, FERRY_FIRE, LIBRARY_HOURS, STADIUM_VOTE, BAKERY_STRIKE]


def readers(settings: Settings, texts: Sequence[str]) -> list[Callable[[], ExtractedArticle]]:
    return [functools.partial(sources.from_text, text, settings) for text in texts]


def stored(engine: Engine) -> tuple[list[str], np.ndarray, tuple[int, int, int]]:
    """Every chunk's text and vector, in the order added, and the collection's counts."""
    ids, texts = engine.store.chunk_texts("default")
    vector_ids, vectors = engine.store.chunk_vectors("default")
    rows = {int(i): n for n, i in enumerate(vector_ids)}
    order = sorted(range(len(ids)), key=lambda n: ids[n])
    return [texts[n] for n in order], vectors[[rows[ids[n]] for n in order]], engine.store.counts("default")


@pytest.fixture
def counted(settings: Settings) -> Iterator[tuple[Engine, HashEmbedder]]:
    embedder = HashEmbedder()
    engine = Engine(settings, embedder)
    yield engine, embedder
    engine.close()


def test_several_articles_are_stored_as_adding_each_alone(tmp_path: Path, settings: Settings) -> None:
    one = Engine(settings.model_copy(update={"data_dir": tmp_path / "one"}), HashEmbedder())
    many = Engine(settings.model_copy(update={"data_dir": tmp_path / "many"}), HashEmbedder())
    alone = [one.add_text(text).article for text in TEXTS]
    together = [r.article for r in many.add_all(readers(many.settings, TEXTS))]  # type: ignore[union-attr]
    assert [(a.title, a.chunks, a.chars) for a in together] == [(a.title, a.chunks, a.chars) for a in alone]
    texts_a, vectors_a, counts_a = stored(one)
    texts_b, vectors_b, counts_b = stored(many)
    assert texts_a == texts_b
    assert counts_a == counts_b
    np.testing.assert_allclose(vectors_a, vectors_b, atol=1e-6)
    question = "who said the call with the port authority chief happened?"
    assert [r.text for r in many.ask(question).results] == [r.text for r in one.ask(question).results]
    one.close()
    many.close()


def test_short_articles_go_to_the_model_together(counted: tuple[Engine, HashEmbedder]) -> None:
    engine, embedder = counted
    results = list(engine.add_all(readers(engine.settings, TEXTS)))
    assert all(isinstance(r, AddResult) and not r.duplicate for r in results)
    # One window: its chunks in one call and its sentences in another, where one by one takes two per article.
    assert embedder.calls == 2
    assert engine.article_count() == len(TEXTS)


def test_each_window_is_stored_before_the_next_articles_are_read(settings: Settings) -> None:
    engine = Engine(settings.model_copy(update={"batch_size": 1}), HashEmbedder())  # windows of 4 chunks
    read: list[int] = []

    def reader(n: int) -> ExtractedArticle:
        read.append(n)
        return sources.from_text(TEXTS[n], settings)

    outcomes = engine.add_all([functools.partial(reader, n) for n in range(len(TEXTS))])
    first = next(outcomes)
    assert isinstance(first, AddResult)
    assert engine.article(first.article.id).title == first.article.title  # stored, and ...
    assert len(read) < len(TEXTS)  # ... before the last articles were read
    assert len(list(outcomes)) == len(TEXTS) - 1
    assert engine.article_count() == len(TEXTS)
    engine.close()


def test_an_unreadable_source_is_its_own_error_and_the_others_are_added(engine: Engine) -> None:
    def unsupported() -> ExtractedArticle:
        return sources.from_bytes(b"\x00\x01binary", "photo.png", engine.settings)

    def empty() -> ExtractedArticle:
        return sources.from_text("   \n\n  ", engine.settings)

    first, second = readers(engine.settings, TEXTS[:2])
    outcomes = list(engine.add_all([first, unsupported, second, empty]))
    assert isinstance(outcomes[0], AddResult)
    assert isinstance(outcomes[2], AddResult)
    assert isinstance(outcomes[1], UnsupportedContentError)
    assert isinstance(outcomes[3], NoTextError)
    assert engine.article_count() == 2
    assert [a.id for a in engine.articles()] == [outcomes[2].article.id, outcomes[0].article.id]


def test_the_same_text_twice_in_one_call_is_stored_once(engine: Engine) -> None:
    outcomes = list(engine.add_all(readers(engine.settings, [FERRY_FIRE, PHONE_CALL, FERRY_FIRE.upper()])))
    assert [isinstance(o, AddResult) and o.duplicate for o in outcomes] == [False, False, True]
    assert outcomes[2].article.id == outcomes[0].article.id  # type: ignore[union-attr]
    assert engine.article_count() == 2


def test_an_already_stored_article_is_reported_and_not_added_again(engine: Engine) -> None:
    known = engine.add_text(LIBRARY_HOURS).article
    outcomes = list(engine.add_all(readers(engine.settings, [BAKERY_STRIKE, LIBRARY_HOURS])))
    assert isinstance(outcomes[1], AddResult)
    assert (outcomes[1].duplicate, outcomes[1].article.id) == (True, known.id)
    assert engine.article_count() == 2


def test_a_known_url_is_not_fetched_again(server: LocalServer, open_settings: Settings) -> None:
    server.routes["/ferry"] = respond(NEWS_PAGE)
    engine = Engine(open_settings, embedder=HashEmbedder())
    try:
        first = list(engine.add_all([functools.partial(engine.read_url, server.url("/ferry"))]))
        again = list(engine.add_all([functools.partial(engine.read_url, server.url("/ferry/?utm_source=x"))]))
    finally:
        engine.close()
    assert isinstance(first[0], AddResult)
    assert isinstance(again[0], AddResult)
    assert (first[0].duplicate, again[0].duplicate, again[0].reason) == (False, True, "url")
    assert server.hits == ["/ferry"]


class FailingEmbedder(HashEmbedder):
    """Fails on the model call that embeds the article holding ``marker``."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker

    def encode(self, texts: Sequence[str], batch_size: int = 16) -> np.ndarray:
        if any(self.marker in t.lower() for t in texts):
            raise RuntimeError("the model failed")
        return super().encode(texts, batch_size)


def test_a_model_failure_keeps_the_articles_already_added_and_adds_nothing_half(settings: Settings) -> None:
    engine = Engine(settings.model_copy(update={"batch_size": 1}), FailingEmbedder("bakery"))
    outcomes = engine.add_all(readers(settings, TEXTS))  # the bakery article is last, in a later window
    added: list[AddResult | UserInputError] = []

    def add_until_it_fails() -> None:
        added.extend(outcomes)

    with pytest.raises(RuntimeError, match="the model failed"):
        add_until_it_fails()
    assert 0 < len(added) < len(TEXTS)
    assert all(isinstance(r, AddResult) for r in added)
    assert engine.article_count() == len(added)
    assert engine.store.counts("default")[1] == sum(r.article.chunks for r in added if isinstance(r, AddResult))
    assert len(engine.store.chunk_vectors("default")[0]) == engine.store.counts("default")[1]
    assert "bakery" not in " ".join(a.title.lower() for a in engine.articles())
    engine.close()


def test_a_reader_error_that_is_not_the_users_stops_the_call(engine: Engine) -> None:
    def broken() -> ExtractedArticle:
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(engine.add_all([broken, *readers(engine.settings, TEXTS[:1])]))
    assert engine.article_count() == 0


def test_nothing_to_add_yields_nothing(engine: Engine) -> None:
    assert list(engine.add_all([])) == []


def test_user_errors_are_yielded_not_raised(engine: Engine) -> None:
    def refused() -> ExtractedArticle:
        raise UserInputError("The link is not a web page.")

    outcomes = list(engine.add_all([refused]))
    assert [str(o) for o in outcomes] == ["The link is not a web page."]
