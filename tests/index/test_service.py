"""The Engine facade with the fake embedder: adding, duplicates, collections, removal, recovery, rebuild, asking."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from index.errors import (
    ArticleNotFoundError,
    EmptyQuestionError,
    ModelMismatchError,
    QuestionTooLongError,
    UserInputError,
)
from index.models import Answer
from index.service import Engine
from index.settings import Settings
from index.vectors import VectorIndex
from tests.fakes.embedder import HashEmbedder
from tests.index.articles import (
    ALL_ARTICLES,
    BAKERY_STRIKE,
    FERRY_FIRE,
    LIBRARY_HOURS,
    NEWS_PAGE,
    PHONE_CALL,
    STADIUM_VOTE,
)
from tests.index.local_server import LocalServer, respond

QUESTIONS = {
    "ferry": "how many passengers were evacuated after the ferry engine fire?",
    "library": "when will the branch libraries open on Sunday afternoons?",
    "stadium": "what share of season-ticket holders backed the stadium move?",
    "bakery": "why did the bakery workers walk out over night shifts?",
    "phone": "who said the call with the port authority chief happened?",
}
TEXTS = {
    "phone": PHONE_CALL,
    "ferry": FERRY_FIRE,
    "library": LIBRARY_HOURS,
    "stadium": STADIUM_VOTE,
    "bakery": BAKERY_STRIKE,
}


def add_all(engine: Engine, collection: str = "default") -> dict[str, int]:
    """Add every test article; return their ids by short name."""
    return {name: engine.add_text(text, collection).article.id for name, text in TEXTS.items()}


def assert_verbatim(engine: Engine, answer: Answer) -> None:
    for r in answer.results:
        assert r.text == engine.store.article_text(r.article_id)[r.start : r.end]


def saved_ids(settings: Settings, collection: str = "default", dimension: int = 64) -> list[int]:
    """The chunk ids held by the FAISS files on disk (the snapshot and the delta after it)."""
    return sorted(int(i) for i in VectorIndex(settings.index_dir, collection, dimension).saved()[1])


def stored_ids(engine: Engine, collection: str = "default") -> list[int]:
    return sorted(int(i) for i in engine.store.chunk_vectors(collection)[0])


@pytest.fixture
def filled(engine: Engine) -> dict[str, int]:
    return add_all(engine)


# --- adding and listing --------------------------------------------------------------------------


def test_added_text_is_listed_with_its_title_and_size(engine: Engine) -> None:
    result = engine.add_text(FERRY_FIRE, added_by="user#1")
    assert not result.duplicate
    [listed] = engine.articles()
    assert listed.id == result.article.id
    assert listed.title == "Ferry operator fined after engine fire on Lake Varrow crossing"
    assert listed.chars == len(engine.store.article_text(listed.id))
    assert listed.chunks >= 1
    assert listed.added_by == "user#1"


def test_a_given_title_replaces_the_first_line(engine: Engine) -> None:
    assert engine.add_text(FERRY_FIRE, title="Ferry fine").article.title == "Ferry fine"


def test_articles_are_listed_newest_first(engine: Engine, filled: dict[str, int]) -> None:
    assert [a.id for a in engine.articles()] == sorted(filled.values(), reverse=True)


def test_stats_count_articles_chunks_and_sentences(engine: Engine, filled: dict[str, int]) -> None:
    stats = engine.stats()
    assert stats.articles == len(filled)
    assert stats.chunks == sum(a.chunks for a in engine.articles())
    assert stats.sentences > stats.chunks
    assert stats.model == "hash-test"
    assert stats.dimension == 64
    assert stats.index_bytes > 0
    assert stats.database_bytes > 0


def test_stats_of_an_empty_collection_are_zero(engine: Engine) -> None:
    stats = engine.stats("nothing-here")
    assert (stats.articles, stats.chunks, stats.sentences, stats.index_bytes) == (0, 0, 0, 0)


def test_an_article_can_be_added_from_an_uploaded_file(engine: Engine) -> None:
    result = engine.add_bytes(NEWS_PAGE.encode(), "ferry.html")
    assert result.article.title == "Ferry operator fined after engine fire on Lake Varrow crossing"
    assert "We use cookies" not in engine.store.article_text(result.article.id)


def test_an_article_can_be_added_from_a_url(engine: Engine, server: LocalServer, open_settings: Settings) -> None:
    server.routes["/ferry"] = respond(NEWS_PAGE)
    fetching = Engine(open_settings, embedder=HashEmbedder())
    try:
        article = fetching.add_url(server.url("/ferry")).article
        assert (article.url, article.byline, article.published) == (
            server.url("/ferry"),
            "Imogen Castellanos",
            "2024-03-14",
        )
        answer = fetching.ask("who chaired the tribunal that fined the ferry company?")
        assert answer.results[0].article_id == article.id
        assert all("cookies" not in r.text and "Donate" not in r.text for r in answer.results)
    finally:
        fetching.close()


# --- duplicates ----------------------------------------------------------------------------------


def test_the_same_text_with_other_spacing_and_case_is_not_stored_twice(engine: Engine) -> None:
    first = engine.add_text(LIBRARY_HOURS)
    again = engine.add_text("  " + LIBRARY_HOURS.upper().replace(" ", "   ").replace("\n\n", "\n\n\n"))
    assert again.duplicate
    assert again.reason == "text"
    assert again.article.id == first.article.id
    assert len(engine.articles()) == 1


def test_the_same_canonical_url_is_not_stored_twice(engine: Engine) -> None:
    first = engine.add_text(LIBRARY_HOURS, url="https://news.example/libraries")
    again = engine.add_text(STADIUM_VOTE, url="https://www.NEWS.example/libraries/?utm_source=feed#top")
    assert again.duplicate
    assert again.reason == "url"
    assert again.article.id == first.article.id
    assert len(engine.articles()) == 1


def test_a_known_url_is_not_fetched_again(server: LocalServer, open_settings: Settings) -> None:
    server.routes["/ferry"] = respond(NEWS_PAGE)
    fetching = Engine(open_settings, embedder=HashEmbedder())
    try:
        first = fetching.add_url(server.url("/ferry"))
        again = fetching.add_url(server.url("/ferry/?utm_campaign=share"))
    finally:
        fetching.close()
    assert (again.duplicate, again.reason, again.article.id) == (True, "url", first.article.id)
    assert server.hits == ["/ferry"]


def test_the_same_article_can_be_added_to_two_collections(engine: Engine) -> None:
    one = engine.add_text(LIBRARY_HOURS, "guild-a")
    other = engine.add_text(LIBRARY_HOURS, "guild-b")
    assert not other.duplicate
    assert one.article.id != other.article.id


def test_the_same_article_added_from_many_threads_is_stored_once(engine: Engine) -> None:
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: engine.add_text(FERRY_FIRE), range(6)))
    assert sum(not r.duplicate for r in results) == 1
    assert len({r.article.id for r in results}) == 1
    assert len(engine.articles()) == 1


# --- collections ---------------------------------------------------------------------------------


def test_an_article_in_one_collection_is_never_quoted_in_another(engine: Engine) -> None:
    ferry = engine.add_text(FERRY_FIRE, "guild-a").article.id
    library = engine.add_text(LIBRARY_HOURS, "guild-b").article.id
    answer = engine.ask(QUESTIONS["ferry"], "guild-b", k=5)
    assert answer.results
    assert {r.article_id for r in answer.results} == {library}
    assert ferry not in {r.article_id for r in answer.results}


@pytest.mark.parametrize(("one", "other"), [("guild/1", "guild_1"), ("A", "a"), ("default", "default ")])
def test_collections_with_similar_names_are_kept_apart(engine: Engine, one: str, other: str) -> None:
    engine.add_text(FERRY_FIRE, one)
    library = engine.add_text(LIBRARY_HOURS, other).article.id
    assert {r.article_id for r in engine.ask(QUESTIONS["ferry"], other, k=5).results} == {library}
    assert [a.title for a in engine.articles(one)] == ["Ferry operator fined after engine fire on Lake Varrow crossing"]


def test_asking_a_collection_with_no_articles_is_a_clear_error(engine: Engine) -> None:
    engine.add_text(FERRY_FIRE, "guild-a")
    with pytest.raises(UserInputError, match="No articles have been added"):
        engine.ask(QUESTIONS["ferry"], "guild-b")


def test_an_article_cannot_be_removed_through_another_collection(engine: Engine) -> None:
    ferry = engine.add_text(FERRY_FIRE, "guild-a").article.id
    with pytest.raises(ArticleNotFoundError):
        engine.remove(ferry, "guild-b")
    assert [a.id for a in engine.articles("guild-a")] == [ferry]


# --- removing ------------------------------------------------------------------------------------


def test_removing_an_article_removes_its_vectors_from_the_saved_index(
    engine: Engine, filled: dict[str, int], settings: Settings
) -> None:
    before = saved_ids(settings)
    removed = engine.remove(filled["ferry"])
    after = saved_ids(settings)
    assert len(after) == len(before) - removed.chunks
    assert after == stored_ids(engine)


def test_a_removed_article_is_never_quoted(engine: Engine, filled: dict[str, int]) -> None:
    engine.remove(filled["ferry"])
    for question in [QUESTIONS["ferry"], "Lake Varrow ferry fire tribunal fine engineers", "Ewan Fairbairn"]:
        assert filled["ferry"] not in {r.article_id for r in engine.ask(question, k=10).results}


def test_a_removed_article_leaves_the_list(engine: Engine, filled: dict[str, int]) -> None:
    engine.remove(filled["ferry"])
    assert filled["ferry"] not in {a.id for a in engine.articles()}
    assert engine.stats().articles == len(filled) - 1


def test_removing_a_missing_article_is_an_error(engine: Engine, filled: dict[str, int]) -> None:
    with pytest.raises(ArticleNotFoundError, match="no article #9999"):
        engine.remove(9999)


def test_removing_the_last_article_leaves_an_empty_collection(engine: Engine) -> None:
    engine.remove(engine.add_text(FERRY_FIRE).article.id)
    with pytest.raises(UserInputError, match="No articles"):
        engine.ask(QUESTIONS["ferry"])


def test_a_removed_article_can_be_added_again(engine: Engine) -> None:
    first = engine.add_text(FERRY_FIRE).article.id
    engine.remove(first)
    again = engine.add_text(FERRY_FIRE)
    assert not again.duplicate
    assert engine.ask(QUESTIONS["ferry"]).results[0].article_id == again.article.id


# --- recovering from a crash between the SQLite write and the FAISS save -------------------------


def _copy_index_files(settings: Settings, to: Path) -> None:
    shutil.copytree(settings.index_dir, to)


def _restore(settings: Settings, backup: Path, names: Callable[[Path], bool] = lambda _: True) -> None:
    for path in backup.iterdir():
        if names(path):
            shutil.copy2(path, settings.index_dir / path.name)


def _overwrite_index(settings: Settings) -> None:
    next(settings.index_dir.glob("*.faiss")).write_bytes(b"\0garbage" * 64)


DAMAGE: dict[str, Callable[[Settings, Path], None]] = {
    "index files deleted": lambda s, _: shutil.rmtree(s.index_dir),
    "index file garbage": lambda s, _: _overwrite_index(s),
    "older copy restored": _restore,
    "older index, newer metadata": lambda s, backup: _restore(s, backup, lambda p: p.suffix == ".faiss"),
    "newer index, older metadata": lambda s, backup: _restore(s, backup, lambda p: p.suffix == ".json"),
}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_stale_or_damaged_index_is_rebuilt_on_start(
    settings: Settings, tmp_path: Path, damage: Callable[[Settings, Path], None]
) -> None:
    first = Engine(settings, embedder=HashEmbedder())
    ferry = first.add_text(FERRY_FIRE).article.id
    _copy_index_files(settings, tmp_path / "backup")
    library = first.add_text(LIBRARY_HOURS).article.id
    first.remove(ferry)
    stadium = first.add_text(STADIUM_VOTE).article.id
    first.close()

    damage(settings, tmp_path / "backup")

    again = Engine(settings, embedder=HashEmbedder())
    try:
        for question, expected in [(QUESTIONS["library"], library), (QUESTIONS["stadium"], stadium)]:
            answer = again.ask(question, k=5)
            assert answer.results[0].article_id == expected
            assert ferry not in {r.article_id for r in answer.results}
            assert_verbatim(again, answer)
        assert saved_ids(settings) == stored_ids(again)
    finally:
        again.close()


def test_a_crash_after_the_database_write_is_repaired_on_the_next_start(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = Engine(settings, embedder=HashEmbedder())
    first.add_text(FERRY_FIRE)

    def crash(self: VectorIndex, version: int) -> None:
        raise KeyboardInterrupt("power cut")

    with monkeypatch.context() as patch:
        patch.setattr(VectorIndex, "save", crash)
        with pytest.raises(KeyboardInterrupt):
            first.add_text(LIBRARY_HOURS)
    first.close()

    again = Engine(settings, embedder=HashEmbedder())
    try:
        [library] = [a.id for a in again.articles() if a.title == "County libraries to open on Sundays"]
        answer = again.ask(QUESTIONS["library"])
        assert answer.results[0].article_id == library
        assert_verbatim(again, answer)
        assert saved_ids(settings) == stored_ids(again)
    finally:
        again.close()


def test_a_crash_after_a_removal_never_quotes_the_removed_article(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = Engine(settings, embedder=HashEmbedder())
    ferry = first.add_text(FERRY_FIRE).article.id
    first.add_text(LIBRARY_HOURS)
    with monkeypatch.context() as patch:
        patch.setattr(VectorIndex, "save", lambda self, version: (_ for _ in ()).throw(KeyboardInterrupt()))
        with pytest.raises(KeyboardInterrupt):
            first.remove(ferry)
    first.close()

    again = Engine(settings, embedder=HashEmbedder())
    try:
        assert ferry not in {r.article_id for r in again.ask(QUESTIONS["ferry"], k=10).results}
        assert saved_ids(settings) == stored_ids(again)
    finally:
        again.close()


def test_another_engine_on_the_same_data_sees_new_articles(settings: Settings, engine: Engine) -> None:
    engine.add_text(FERRY_FIRE)
    engine.ask(QUESTIONS["ferry"])  # load the indexes into memory
    other = Engine(settings, embedder=HashEmbedder())
    try:
        library = other.add_text(LIBRARY_HOURS).article.id
    finally:
        other.close()
    answer = engine.ask(QUESTIONS["library"])
    assert answer.results[0].article_id == library
    assert_verbatim(engine, answer)


# --- rebuilding ----------------------------------------------------------------------------------


def test_rebuild_reports_progress_up_to_the_total(engine: Engine, filled: dict[str, int]) -> None:
    calls: list[tuple[int, int]] = []
    result = engine.rebuild(progress=lambda done, total: calls.append((done, total)))
    total = engine.stats().chunks
    assert calls[0] == (0, total)
    assert calls[-1] == (total, total)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert {t for _, t in calls} == {total}
    assert (result.articles, result.chunks) == (len(filled), total)


@pytest.mark.parametrize("chunk_tokens", [40, 254])
def test_rebuild_with_other_chunk_sizes_ends_its_progress_on_the_new_count(
    engine: Engine, filled: dict[str, int], chunk_tokens: int
) -> None:
    before = engine.stats().chunks
    engine.settings = engine.settings.model_copy(update={"chunk_tokens": chunk_tokens})
    calls: list[tuple[int, int]] = []
    result = engine.rebuild(progress=lambda done, total: calls.append((done, total)))
    after = engine.stats().chunks
    assert after != before
    assert {total for _, total in calls} == {after}
    assert calls[-1] == (after, after) == (result.chunks, result.chunks)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_a_rebuild_that_fails_halfway_leaves_the_index_as_it_was(engine: Engine, filled: dict[str, int]) -> None:
    before = [engine.ask(q).to_dict() for q in QUESTIONS.values()]
    engine.settings = engine.settings.model_copy(update={"batch_size": 1})  # many calls to the model
    embedder = engine.embedder
    assert isinstance(embedder, HashEmbedder)
    encode, calls = embedder.encode, []

    def failing(texts: list[str], batch_size: int = 16) -> np.ndarray:
        calls.append(len(texts))
        if len(calls) == 3:
            raise RuntimeError("the model fell over")
        return encode(texts, batch_size)

    embedder.encode = failing  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="fell over"):
        engine.rebuild()
    embedder.encode = encode  # type: ignore[method-assign]
    assert [engine.ask(q).to_dict() for q in QUESTIONS.values()] == before


def test_rebuild_keeps_the_answers_the_same(engine: Engine, filled: dict[str, int]) -> None:
    before = [engine.ask(q).to_dict() for q in QUESTIONS.values()]
    engine.rebuild()
    assert [engine.ask(q).to_dict() for q in QUESTIONS.values()] == before


def test_rebuild_of_an_empty_collection_does_nothing(engine: Engine) -> None:
    calls: list[tuple[int, int]] = []
    result = engine.rebuild("empty", progress=lambda done, total: calls.append((done, total)))
    assert (result.articles, result.chunks) == (0, 0)
    assert calls[-1] == (0, 0)


# --- a different model ---------------------------------------------------------------------------


@pytest.fixture
def other_model(settings: Settings, filled: dict[str, int], engine: Engine) -> Iterator[Engine]:
    """An engine opened on the same data with another model (of another dimension) configured."""
    engine.close()
    other = Engine(settings, embedder=HashEmbedder(dimension=32, name="hash-other"))
    yield other
    other.close()


def test_asking_with_another_model_says_to_rebuild(other_model: Engine) -> None:
    with pytest.raises(ModelMismatchError) as caught:
        other_model.ask(QUESTIONS["ferry"])
    message = str(caught.value)
    assert "hash-test" in message
    assert "hash-other" in message
    assert "rebuild" in message


def test_adding_with_another_model_says_to_rebuild(other_model: Engine) -> None:
    with pytest.raises(ModelMismatchError, match="rebuild"):
        other_model.add_text("A brand new article about the harbour tunnel opening on Monday morning.")


def test_rebuild_with_another_model_makes_asking_work_again(
    other_model: Engine, filled: dict[str, int], settings: Settings
) -> None:
    other_model.rebuild()
    answer = other_model.ask(QUESTIONS["ferry"])
    assert answer.results[0].article_id == filled["ferry"]
    assert_verbatim(other_model, answer)
    assert other_model.stats().model == "hash-other"
    assert other_model.stats().dimension == 32
    assert saved_ids(settings, dimension=32) == stored_ids(other_model)


def test_a_model_change_in_one_collection_leaves_the_others_usable(settings: Settings, engine: Engine) -> None:
    engine.add_text(FERRY_FIRE, "guild-a")
    engine.close()
    other = Engine(settings, embedder=HashEmbedder(dimension=32, name="hash-other"))
    try:
        library = other.add_text(LIBRARY_HOURS, "guild-b").article.id
        assert other.ask(QUESTIONS["library"], "guild-b").results[0].article_id == library
    finally:
        other.close()


# --- asking --------------------------------------------------------------------------------------


@pytest.mark.parametrize("question", ["", "   ", "\n\t  \n"], ids=["empty", "spaces", "newlines"])
def test_an_empty_question_is_refused(engine: Engine, filled: dict[str, int], question: str) -> None:
    with pytest.raises(EmptyQuestionError):
        engine.ask(question)


def test_an_empty_question_is_refused_even_before_any_article_is_added(engine: Engine) -> None:
    with pytest.raises(EmptyQuestionError):
        engine.ask("  ")


def test_an_overlong_question_is_refused(engine: Engine, filled: dict[str, int]) -> None:
    with pytest.raises(QuestionTooLongError):
        engine.ask("why " * 1000)


@pytest.mark.parametrize("name", QUESTIONS.keys())
def test_the_right_article_comes_first(engine: Engine, filled: dict[str, int], name: str) -> None:
    assert engine.ask(QUESTIONS[name]).results[0].article_id == filled[name]


def test_results_carry_the_articles_title_and_url(engine: Engine) -> None:
    ferry = engine.add_text(FERRY_FIRE, url="https://courier.example/ferry").article
    [top, *_] = engine.ask(QUESTIONS["ferry"]).results
    assert (top.article_id, top.title, top.url) == (ferry.id, ferry.title, "https://courier.example/ferry")


@pytest.mark.parametrize("k", [1, 2, 5])
def test_k_limits_the_number_of_excerpts(engine: Engine, filled: dict[str, int], k: int) -> None:
    assert 1 <= len(engine.ask(QUESTIONS["phone"], k=k).results) <= k


def test_results_come_in_rank_order(engine: Engine, filled: dict[str, int]) -> None:
    scores = [r.score for r in engine.ask(QUESTIONS["phone"], k=8).results]
    assert scores == sorted(scores, reverse=True)


def test_excerpts_of_one_answer_do_not_overlap(engine: Engine, filled: dict[str, int]) -> None:
    results = engine.ask(QUESTIONS["phone"], k=10).results
    for i, a in enumerate(results):
        for b in results[i + 1 :]:
            assert a.article_id != b.article_id or a.end <= b.start or b.end <= a.start


def test_a_long_single_sentence_is_cut_to_at_most_400_characters(engine: Engine) -> None:
    clauses = [f"the harbour board approved item number {n} of the spending plan" for n in range(1, 40)]
    text = "Harbour plan approved\n\nOn Monday " + ", and ".join(clauses) + "."
    article = engine.add_text(text).article.id
    answer = engine.ask("which item number 17 of the spending plan did the harbour board approve?")
    assert answer.results[0].article_id == article
    assert all(len(r.text) <= 400 for r in answer.results)
    assert_verbatim(engine, answer)


VOCABULARY = sorted({w.strip(".,“”'’:;()") for text in ALL_ARTICLES for w in text.split()} - {""})
QUESTION_WORDS = st.lists(
    st.one_of(st.sampled_from(VOCABULARY), st.sampled_from(["who", "what", "when", "why", "did", "the", "say"])),
    min_size=1,
    max_size=12,
).map(" ".join)


@pytest.fixture(scope="module")
def shared_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One fake-model engine with every test article, for property tests that only read."""
    data = tmp_path_factory.mktemp("shared") / "data"
    engine = Engine(Settings(_env_file=None, data_dir=data), embedder=HashEmbedder())  # type: ignore[call-arg]
    add_all(engine)
    yield engine
    engine.close()


EXCERPTS = hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


@EXCERPTS
@given(question=QUESTION_WORDS, k=st.integers(1, 10))
def test_every_excerpt_is_a_verbatim_slice_of_its_article(shared_engine: Engine, question: str, k: int) -> None:
    answer = shared_engine.ask(question, k=k)
    assert answer.results
    assert_verbatim(shared_engine, answer)


@EXCERPTS
@given(question=QUESTION_WORDS)
def test_every_excerpt_is_one_to_three_whole_sentences(shared_engine: Engine, question: str) -> None:
    for r in shared_engine.ask(question, k=5).results:
        sentences = shared_engine.store.sentences(r.article_id, r.start, r.end)
        assert 1 <= len(sentences) <= 3, r.text
        if len(sentences) > 1:
            assert (r.start, r.end) == (sentences[0].start, sentences[-1].end), r.text


@EXCERPTS
@given(question=QUESTION_WORDS)
def test_every_excerpt_is_at_most_400_characters(shared_engine: Engine, question: str) -> None:
    assert all(0 < len(r.text) <= 400 for r in shared_engine.ask(question, k=5).results)


@EXCERPTS
@given(question=QUESTION_WORDS)
@example(question="14 14 14 Mill Monday estimated old")
def test_weak_results_are_never_presented_as_an_answer(shared_engine: Engine, question: str) -> None:
    answer = shared_engine.ask(question, k=5)
    if not answer.answered:
        assert all(r.weak for r in answer.results)
    else:
        assert not answer.results[0].weak


# --- many threads at once ------------------------------------------------------------------------


def test_adding_and_asking_from_many_threads_at_once(engine: Engine, settings: Settings) -> None:
    engine.add_text(PHONE_CALL)
    errors: list[BaseException] = []
    answers: list[Answer] = []
    start = threading.Barrier(8)

    def add(text: str) -> None:
        start.wait()
        engine.add_text(text)

    def ask(question: str) -> None:
        start.wait()
        for _ in range(5):
            answers.append(engine.ask(question))

    adding = (FERRY_FIRE, LIBRARY_HOURS, STADIUM_VOTE, BAKERY_STRIKE)
    jobs: list[tuple[Callable[[str], None], str]] = [(add, t) for t in adding]
    jobs += [(ask, q) for q in list(QUESTIONS.values())[:4]]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for future in [pool.submit(fn, arg) for fn, arg in jobs]:
            try:
                future.result(timeout=60)
            except BaseException as exc:  # collect, so every failure is reported
                errors.append(exc)
    assert errors == []
    assert len(engine.articles()) == 5
    assert len(answers) == 20
    for answer in answers:
        assert_verbatim(engine, answer)
    assert saved_ids(settings) == stored_ids(engine)
    for name, question in QUESTIONS.items():
        top = engine.ask(question).results[0]
        assert engine.article(top.article_id).title == TEXTS[name].splitlines()[0]


def test_asking_while_articles_are_removed_never_fails(settings: Settings) -> None:
    for round_ in range(25):  # the race is narrow: repeat until it shows or clearly cannot happen
        engine = Engine(settings.model_copy(update={"data_dir": settings.data_dir / str(round_)}), HashEmbedder())
        ids = [engine.add_text(text).article.id for text in ALL_ARTICLES]
        removing = threading.Event()
        errors: list[BaseException] = []

        def ask(engine: Engine = engine, removing: threading.Event = removing, errors: list = errors) -> None:
            while not removing.is_set():
                try:
                    answer = engine.ask("ferry fire library stadium bakery phone call", k=10)
                    for r in answer.results:  # an article removed since the answer was built has no text to compare
                        text = engine.store.article_text(r.article_id)
                        assert not text or r.text == text[r.start : r.end]
                except UserInputError as exc:
                    if "No articles" not in str(exc):  # an empty collection by now is fine
                        errors.append(exc)

        with ThreadPoolExecutor(max_workers=3) as pool:
            askers = [pool.submit(ask) for _ in range(3)]
            for article_id in ids:
                engine.remove(article_id)
            removing.set()
            for future in askers:
                future.result(timeout=60)
        engine.close()
        assert errors == []


def test_vectors_are_normalized_so_scores_are_cosines() -> None:
    vectors = HashEmbedder().encode(["a ferry fire", "library hours"])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
