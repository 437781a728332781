"""The engine's contract, run against both storage backends: SQLite + FAISS, and PostgreSQL + pgvector."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from index.errors import ArticleNotFoundError, EmptyCollectionError
from index.feedback import Votes
from index.service import Engine
from index.settings import Settings
from tests.conftest import drop_database, fresh_database
from tests.fakes.embedder import HashEmbedder
from tests.index.articles import BAKERY_STRIKE, FERRY_FIRE, LIBRARY_HOURS, PHONE_CALL, STADIUM_VOTE

TEXTS = {
    "phone": PHONE_CALL,
    "ferry": FERRY_FIRE,
    "library": LIBRARY_HOURS,
    "stadium": STADIUM_VOTE,
    "bakery": BAKERY_STRIKE,
}
QUESTIONS = {
    "ferry": "how many passengers were evacuated after the ferry engine fire?",
    "library": "when will the branch libraries open on Sunday afternoons?",
    "stadium": "what share of season-ticket holders backed the stadium move?",
    "bakery": "why did the bakery workers walk out over night shifts?",
    "phone": "who said the call with the port authority chief happened?",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    url = fresh_database(request.getfixturevalue("postgres_server")) if request.param == "postgresql" else None
    yield Settings(_env_file=None, data_dir=tmp_path / "data", database_url=url)  # type: ignore[call-arg]
    if url:
        drop_database(url)


@pytest.fixture
def engine(backend_settings: Settings) -> Iterator[Engine]:
    eng = Engine(backend_settings, embedder=HashEmbedder())
    yield eng
    eng.close()


@pytest.fixture
def filled(engine: Engine) -> dict[str, int]:
    return {name: engine.add_text(text).article.id for name, text in TEXTS.items()}


def test_an_added_article_is_listed_and_counted(engine: Engine) -> None:
    added = engine.add_text(PHONE_CALL, title="Call row")
    assert [a.title for a in engine.articles()] == ["Call row"]
    stats = engine.stats()
    assert (stats.articles, stats.chunks) == (1, added.article.chunks)
    assert stats.sentences > 0


def test_the_same_text_or_url_is_stored_once(engine: Engine) -> None:
    first = engine.add_text(PHONE_CALL, url="https://example.com/a?utm_source=x")
    again = engine.add_text("  " + PHONE_CALL.upper())
    same_url = engine.add_text(FERRY_FIRE, url="https://example.com/a")
    assert (again.duplicate, again.reason, again.article.id) == (True, "text", first.article.id)
    assert (same_url.duplicate, same_url.reason) == (True, "url")
    assert engine.stats().articles == 1


def test_the_same_article_added_from_many_threads_is_stored_once(engine: Engine) -> None:
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: engine.add_text(BAKERY_STRIKE), range(4)))
    assert len({r.article.id for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1


@pytest.mark.parametrize("name", list(QUESTIONS))
def test_the_right_article_comes_first(engine: Engine, filled: dict[str, int], name: str) -> None:
    found = engine.ask(QUESTIONS[name])
    assert found.results[0].article_id == filled[name]
    for excerpt in found.results:
        assert engine.article_text(excerpt.article_id)[excerpt.start : excerpt.end] == excerpt.text


def test_a_question_limited_to_articles_quotes_only_them(engine: Engine, filled: dict[str, int]) -> None:
    found = engine.ask(QUESTIONS["ferry"], articles=[filled["library"]])
    assert {r.article_id for r in found.results} == {filled["library"]}


def test_a_removed_article_is_never_quoted(engine: Engine, filled: dict[str, int]) -> None:
    engine.remove(filled["ferry"])
    assert all(r.article_id != filled["ferry"] for r in engine.ask(QUESTIONS["ferry"], k=10).results)
    with pytest.raises(ArticleNotFoundError):
        engine.article(filled["ferry"])


def test_a_removed_article_can_be_added_again_with_a_new_id(engine: Engine) -> None:
    first = engine.add_text(PHONE_CALL).article.id
    engine.remove(first)
    with pytest.raises(EmptyCollectionError):
        engine.ask("who said it?")
    again = engine.add_text(PHONE_CALL)
    assert not again.duplicate
    assert again.article.id > first


def test_collections_are_kept_apart(engine: Engine) -> None:
    engine.add_text(FERRY_FIRE, "one")
    engine.add_text(LIBRARY_HOURS, "two")
    assert {r.article_id for r in engine.ask(QUESTIONS["ferry"], "two", k=10).results} == {
        engine.articles("two")[0].id
    }
    with pytest.raises(ArticleNotFoundError):
        engine.article(engine.articles("one")[0].id, "two")


def test_rebuild_keeps_the_answers_the_same(engine: Engine, filled: dict[str, int]) -> None:
    before = [engine.ask(q).results[0].text for q in QUESTIONS.values()]
    result = engine.rebuild()
    assert result.articles == len(TEXTS)
    assert [engine.ask(q).results[0].text for q in QUESTIONS.values()] == before


def test_another_engine_on_the_same_store_sees_writes_at_once(engine: Engine, backend_settings: Settings) -> None:
    engine.add_text(LIBRARY_HOURS)
    other = Engine(backend_settings, embedder=HashEmbedder())
    try:
        other.ask(QUESTIONS["library"])  # loads what it needs
        added = engine.add_text(FERRY_FIRE).article.id
        assert other.ask(QUESTIONS["ferry"]).results[0].article_id == added
        engine.remove(added)
        assert all(r.article_id != added for r in other.ask(QUESTIONS["ferry"], k=10).results)
    finally:
        other.close()


def test_a_failed_write_leaves_nothing_behind(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Crash consistency: an article whose pieces cannot be stored is not stored at all."""
    engine.add_text(LIBRARY_HOURS)
    version = engine.store.collection("default").version
    store_type = type(engine.store)

    def broken(*_: object, **__: object) -> list[int]:
        raise RuntimeError("disk gone")

    monkeypatch.setattr(store_type, "_insert_pieces", staticmethod(broken))
    with pytest.raises(RuntimeError):
        engine.add_text(FERRY_FIRE)
    monkeypatch.undo()
    assert engine.stats().articles == 1
    assert engine.store.collection("default").version == version
    assert engine.ask(QUESTIONS["ferry"], k=10).results  # still answers, from what is there
    assert not engine.add_text(FERRY_FIRE).duplicate


def test_writes_from_many_threads_keep_one_version_per_write(engine: Engine) -> None:
    barrier = threading.Barrier(3)

    def add(text: str) -> None:
        barrier.wait()
        engine.add_text(text)

    with ThreadPoolExecutor(3) as pool:
        list(pool.map(add, [FERRY_FIRE, LIBRARY_HOURS, BAKERY_STRIKE]))
    assert engine.store.collection("default").version == 3
    assert engine.ask(QUESTIONS["bakery"]).results[0].article_id == engine.find_articles("bakery")[0].id


def test_answers_votes_more_and_watches_are_kept(engine: Engine, filled: dict[str, int]) -> None:
    shown = engine.ask(QUESTIONS["bakery"], k=1)
    answer_id = engine.record_answer(shown, asked_by="7")
    engine.note_messages(answer_id, "900", ["901", "902"])

    record = engine.answer_for_message("902")
    assert record is not None
    assert record.id == answer_id
    assert record.quotes[0].article_id == shown.results[0].article_id
    assert engine.answer_in_thread("901") is not None
    assert engine.vote(answer_id, "default", "alice", up=True) == Votes(1, 0)
    assert engine.vote(answer_id, "default", "bob", up=True) == Votes(2, 0)
    assert engine.vote(answer_id, "default", "alice", up=False) == Votes(1, 1)  # changed, not added
    assert engine.feedback("default") == Votes(1, 1)
    more = engine.more(answer_id, "default", k=2)
    assert all((r.article_id, r.start) != (shown.results[0].article_id, shown.results[0].start) for r in more.results)
    engine.vote(answer_id, "default", "carol", up=True)
    upvoted, downvoted = engine.export_feedback("default")
    assert [p["qas"][0]["question"] for d in upvoted["data"] for p in d["paragraphs"]] == [shown.question]
    assert downvoted["data"] == []
    engine.watch("default", "123", on=True, added_by="7")
    assert engine.watched_channels() == {"123": "default"}
    engine.watch("default", "123", on=False)
    assert engine.watched_channels("default") == {}


def test_migrate_copies_an_embedded_directory_once_keeping_ids(
    postgres_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from index.__main__ import main

    embedded = Settings(_env_file=None, data_dir=tmp_path / "data")  # type: ignore[call-arg]
    source = Engine(embedded, embedder=HashEmbedder())
    ids = {name: source.add_text(text).article.id for name, text in TEXTS.items()}
    source.add_text(LIBRARY_HOURS, "other")
    source.remove(ids.pop("bakery"))
    expected = {name: source.ask(QUESTIONS[name]).results[0].text for name in ids}
    source.close()
    url = fresh_database(postgres_server)

    assert main(["--data-dir", str(embedded.data_dir), "migrate", "--to", url]) == 0
    assert main(["--data-dir", str(embedded.data_dir), "migrate", "--to", url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "copied 5 articles of 2 collections (0 already there)",
        "copied 0 articles of 2 collections (5 already there)",
    ]
    target = Engine(embedded.model_copy(update={"database_url": url}), embedder=HashEmbedder())
    try:
        assert sorted(a.id for a in target.articles()) == sorted(ids.values())
        assert {name: target.ask(QUESTIONS[name]).results[0].text for name in ids} == expected
        assert target.add_text(BAKERY_STRIKE).article.id > max(ids.values())
        assert target.stats("other").articles == 1
    finally:
        target.close()


@pytest.mark.parametrize(
    ("df", "budget", "expected"),
    [
        ({"rare": 10, "mid": 900, "common": 5000}, 2000, ["rare", "mid"]),
        ({"rare": 10, "mid": 900, "common": 5000}, 10_000, ["rare", "mid", "common"]),
        ({"alone": 3000, "more": 4000}, 2000, ["alone"]),  # at least one word always finds candidates
        ({"nowhere": 0, "mid": 900}, 100, ["nowhere", "mid"]),
    ],
)
def test_word_candidates_come_from_the_rarest_words_within_the_budget(
    df: dict[str, int], budget: int, expected: list[str]
) -> None:
    from index.pg_store import candidate_terms

    assert candidate_terms(list(df), df, budget) == expected


def test_migrate_copies_feeds_and_the_entries_seen(postgres_server: str, tmp_path: Path) -> None:
    """Following a feed again after migrating must not bring back what was removed before it."""
    embedded = Settings(_env_file=None, data_dir=tmp_path / "data")  # type: ignore[call-arg]
    source = Engine(embedded, embedder=HashEmbedder())
    source.add_text(LIBRARY_HOURS, "news")
    feed, _ = source.store.add_feed(
        "news", "https://example.com/feed.xml", "https://example.com/feed.xml",
        title="Harbour news", added_by="42", notify="900", now="2024-01-01T00:00:00+00:00", limit=3,
    )  # fmt: skip
    source.store.update_feed("news", feed.id, etag='"v1"', failures=2, next_poll="2024-01-02T00:00:00+00:00")
    for key, outcome in (("urn:1", "added"), ("urn:2", "failed")):
        source.store.record_entry(
            "news", "https://example.com/feed.xml", key, link=f"https://example.com/{key}", outcome=outcome,
            article_id=None, error=None, attempts=1, now="2024-01-01T00:00:00+00:00",
        )  # fmt: skip
    source.close()
    url = fresh_database(postgres_server)
    target_settings = embedded.model_copy(update={"database_url": url})

    from index.__main__ import main

    assert main(["--data-dir", str(embedded.data_dir), "migrate", "--to", url]) == 0
    assert main(["--data-dir", str(embedded.data_dir), "migrate", "--to", url]) == 0  # again: nothing doubled
    target = Engine(target_settings, embedder=HashEmbedder())
    try:
        [copied] = target.feeds("news")
        seen = target.store.seen_entries("news", "https://example.com/feed.xml")
    finally:
        target.close()

    assert (copied.url, copied.title, copied.notify, copied.added_by) == (feed.url, "Harbour news", "900", "42")
    assert (copied.etag, copied.failures, copied.next_poll, copied.added) == ('"v1"', 2, "2024-01-02T00:00:00+00:00", 1)
    assert seen == {
        "urn:1": ("https://example.com/urn:1", "added", 1),
        "urn:2": ("https://example.com/urn:2", "failed", 1),
    }
