"""Follow-ups, one-article questions, "More", answer records, votes and their export as an evaluation file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from index import eval as evaluation
from index import store as store_module
from index.__main__ import main as cli
from index.errors import AnswerNotFoundError, ArticleNotFoundError, DatabaseDamagedError
from index.feedback import overlaps, quotes_of
from index.service import Engine, _slices
from index.settings import Settings
from tests.fakes.embedder import HashEmbedder
from tests.index.test_service import QUESTIONS, TEXTS, add_all

SPOKESPERSON = "what did the spokesperson say?"  # the phone-call story has one, and so does the stadium story


@pytest.fixture
def ids(engine: Engine) -> dict[str, int]:
    return add_all(engine)


# --- asking one article, and follow-ups ------------------------------------------------------------


def test_a_question_limited_to_one_article_quotes_only_it(engine: Engine, ids: dict[str, int]) -> None:
    answer = engine.ask(QUESTIONS["ferry"], articles=[ids["phone"]])

    assert answer.results
    assert {r.article_id for r in answer.results} == {ids["phone"]}
    assert answer.scope == (ids["phone"],)


def test_a_question_limited_to_another_collections_article_is_refused(engine: Engine, ids: dict[str, int]) -> None:
    other = engine.add_text(TEXTS["ferry"], "elsewhere").article.id
    with pytest.raises(ArticleNotFoundError):
        engine.ask(QUESTIONS["ferry"], articles=[other])


def test_a_follow_up_stays_on_the_articles_it_prefers(engine: Engine, ids: dict[str, int]) -> None:
    anywhere = engine.ask(SPOKESPERSON)
    assert {r.article_id for r in anywhere.results} != {ids["phone"]}  # the stadium story competes

    follow_up = engine.ask(SPOKESPERSON, prefer=[ids["phone"]])

    assert follow_up.answered
    assert not follow_up.widened
    assert {r.article_id for r in follow_up.results} == {ids["phone"]}


def test_a_follow_up_its_articles_cannot_answer_is_answered_from_the_whole_collection(
    engine: Engine, ids: dict[str, int]
) -> None:
    assert not engine.ask(QUESTIONS["ferry"], articles=[ids["phone"]]).answered

    follow_up = engine.ask(QUESTIONS["ferry"], prefer=[ids["phone"]])

    assert follow_up.widened
    assert follow_up.scope is None
    assert follow_up.results[0].article_id == ids["ferry"]
    assert follow_up.to_dict()["widened"] is True


def test_a_follow_up_nothing_answers_stays_on_the_articles_it_prefers(engine: Engine, ids: dict[str, int]) -> None:
    assert not engine.ask("zebra migration in the savanna").answered

    follow_up = engine.ask("zebra migration in the savanna", prefer=[ids["ferry"]])

    assert not follow_up.widened
    assert {r.article_id for r in follow_up.results} == {ids["ferry"]}
    assert all(r.weak for r in follow_up.results)


def test_a_follow_up_on_a_removed_article_falls_back_to_the_whole_collection(
    engine: Engine, ids: dict[str, int]
) -> None:
    previous = engine.answer_record(engine.record_answer(engine.ask(QUESTIONS["phone"])), "default")
    engine.remove(ids["phone"])

    follow_up = engine.follow_up(QUESTIONS["ferry"], previous)

    assert follow_up.widened
    assert follow_up.results[0].article_id == ids["ferry"]


# --- answer records and "More" ---------------------------------------------------------------------


def test_an_answer_record_keeps_the_question_and_what_was_quoted(engine: Engine, ids: dict[str, int]) -> None:
    answer = engine.ask(QUESTIONS["phone"])
    answer_id = engine.record_answer(answer, asked_by="user-1")

    record = engine.answer_record(answer_id, "default")

    assert (record.question, record.collection, record.answered, record.asked_by) == (
        answer.question,
        "default",
        answer.answered,
        "user-1",
    )
    assert list(record.quotes) == quotes_of(answer)
    assert record.article_ids == [ids["phone"]]


def test_an_answer_is_not_found_from_another_collection(engine: Engine, ids: dict[str, int]) -> None:
    answer_id = engine.record_answer(engine.ask(QUESTIONS["phone"]))
    with pytest.raises(AnswerNotFoundError):
        engine.answer_record(answer_id, "elsewhere")
    with pytest.raises(AnswerNotFoundError):
        engine.vote(answer_id, "elsewhere", "user-1", up=True)


def test_messages_and_threads_lead_back_to_their_answer(engine: Engine, ids: dict[str, int]) -> None:
    first = engine.record_answer(engine.ask(QUESTIONS["phone"]))
    engine.note_messages(first, "channel-1", ["m1", "m2"])
    later = engine.record_answer(engine.ask(SPOKESPERSON))
    engine.note_messages(later, "m1", ["m3"])  # a thread started on m1 has the id m1

    assert engine.answer_for_message("m2").id == first  # type: ignore[union-attr]
    assert engine.answer_for_message("nowhere") is None
    assert engine.answer_in_thread("m1").id == later  # type: ignore[union-attr]
    assert engine.answer_in_thread("channel-1") is None  # not a thread started on an answer


def test_more_shows_the_next_passages_never_the_ones_already_shown(engine: Engine, ids: dict[str, int]) -> None:
    answer = engine.ask(QUESTIONS["phone"], k=2)
    first = engine.record_answer(answer)

    more = engine.more(first, "default", 2)
    second = engine.record_answer(more, parent_id=first)
    again = engine.more(second, "default", 2)

    shown = quotes_of(answer)
    assert more.results
    assert not any(overlaps(q, s) for q in quotes_of(more) for s in shown)
    assert not any(overlaps(q, s) for q in quotes_of(again) for s in [*shown, *quotes_of(more)])


def test_more_of_a_one_article_answer_stays_in_that_article(engine: Engine, ids: dict[str, int]) -> None:
    first = engine.record_answer(engine.ask(QUESTIONS["ferry"], k=1, articles=[ids["phone"]]))
    more = engine.more(first, "default", 3)
    assert {r.article_id for r in more.results} == {ids["phone"]}


def test_more_says_nothing_once_every_passage_was_shown(engine: Engine) -> None:
    engine.add_text("The lighthouse keeper retired on Monday after forty years.", title="Keeper retires")
    first = engine.record_answer(engine.ask("when did the lighthouse keeper retire?", k=3))
    assert engine.more(first, "default", 3).results == []


# --- votes --------------------------------------------------------------------------------------------


def test_each_person_has_one_vote_per_answer_and_may_change_it(engine: Engine, ids: dict[str, int]) -> None:
    answer_id = engine.record_answer(engine.ask(QUESTIONS["phone"]))

    assert engine.vote(answer_id, "default", "ann", up=True) == engine.votes(answer_id)
    engine.vote(answer_id, "default", "ann", up=True)
    engine.vote(answer_id, "default", "ben", up=True)
    assert (engine.votes(answer_id).up, engine.votes(answer_id).down) == (2, 0)
    votes = engine.vote(answer_id, "default", "ann", up=False)
    assert (votes.up, votes.down) == (1, 1)


def test_the_share_of_upvotes_counts_the_last_thirty_days_of_one_collection(
    engine: Engine, ids: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    answer_id = engine.record_answer(engine.ask(QUESTIONS["phone"]))
    engine.add_text(TEXTS["ferry"], "elsewhere")
    elsewhere = engine.record_answer(engine.ask(QUESTIONS["ferry"], "elsewhere"))
    with monkeypatch.context() as old:
        old.setattr(store_module, "_now", lambda: "2020-01-01T00:00:00+00:00")
        engine.vote(answer_id, "default", "long-ago", up=False)
    for voter, up in (("ann", True), ("ben", True), ("cat", True), ("dan", False)):
        engine.vote(answer_id, "default", voter, up=up)
    engine.vote(elsewhere, "elsewhere", "eve", up=False)

    votes = engine.feedback("default")
    stats = engine.stats("default")

    assert (votes.up, votes.down, votes.share_up) == (3, 1, 0.75)
    assert (stats.votes_up, stats.votes_down) == (3, 1)


def test_a_damaged_answer_record_is_never_trusted(engine: Engine, ids: dict[str, int], settings: Settings) -> None:
    answer_id = engine.record_answer(engine.ask(QUESTIONS["phone"]))
    db = sqlite3.connect(settings.db_path)
    db.execute("UPDATE answers SET quotes = '[[1, 0, 5, 0, 5]]' WHERE id = ?", (answer_id,))
    db.commit()
    db.close()
    with pytest.raises(DatabaseDamagedError, match=f"answer #{answer_id}"):
        engine.answer_record(answer_id, "default")


# --- the export -----------------------------------------------------------------------------------------


def test_upvoted_answers_export_as_squad_that_the_evaluation_scores(
    engine: Engine, ids: dict[str, int], tmp_path: Path
) -> None:
    for name in ("phone", "ferry", "library"):
        answer_id = engine.record_answer(engine.ask(QUESTIONS[name]))
        engine.vote(answer_id, "default", "ann", up=True)
    rejected = engine.record_answer(engine.ask(QUESTIONS["stadium"]))
    engine.vote(rejected, "default", "ann", up=False)
    tied = engine.record_answer(engine.ask(QUESTIONS["bakery"]))
    engine.vote(tied, "default", "ann", up=True)
    engine.vote(tied, "default", "ben", up=False)

    upvoted, downvoted = engine.export_feedback("default")
    path = tmp_path / "confirmed.json"
    path.write_text(json.dumps(upvoted), encoding="utf-8")
    articles = evaluation.load_squad(path)

    qas = [qa for doc in articles for p in doc["paragraphs"] for qa in p["qas"]]
    assert sorted(qa["question"] for qa in qas) == sorted(QUESTIONS[n] for n in ("phone", "ferry", "library"))
    for doc in articles:
        context = doc["paragraphs"][0]["context"]
        for qa in doc["paragraphs"][0]["qas"]:
            [gold] = qa["answers"]
            assert context[gold["answer_start"] :].startswith(gold["text"])
    assert [qa["question"] for d in downvoted["data"] for p in d["paragraphs"] for qa in p["qas"]] == [
        QUESTIONS["stadium"]
    ]

    fresh = Engine(Settings(_env_file=None, data_dir=tmp_path / "eval"), embedder=HashEmbedder())  # type: ignore[call-arg]
    try:
        scores = evaluation.evaluate(fresh, articles)
    finally:
        fresh.close()
    assert scores["questions"] == 3
    assert scores["excerpt_hit@1"] == 1.0  # the same engine finds the confirmed sentences again


def test_the_export_leaves_out_answers_whose_article_was_removed(engine: Engine, ids: dict[str, int]) -> None:
    answer_id = engine.record_answer(engine.ask(QUESTIONS["ferry"]))
    engine.vote(answer_id, "default", "ann", up=True)
    engine.remove(ids["ferry"])
    assert engine.export_feedback()[0]["data"] == []


# --- stats and rebuild progress ---------------------------------------------------------------------


def test_stats_count_one_collections_own_size(engine: Engine, ids: dict[str, int]) -> None:
    engine.add_text(TEXTS["ferry"], "small")

    small, large = engine.stats("small"), engine.stats("default")

    assert 0 < small.stored_bytes < large.stored_bytes < large.database_bytes
    assert small.database_bytes == large.database_bytes  # the shared file, the same for both


def test_rebuild_progress_moves_inside_a_long_article(engine: Engine) -> None:
    long_text = " ".join(f"Report {n} says the harbour works reached stage {n} of the plan." for n in range(400))
    engine.add_text(long_text, title="Harbour works")
    engine.settings = engine.settings.model_copy(update={"batch_size": 1})  # steps of four batches: four chunks
    calls: list[tuple[int, int]] = []

    engine.rebuild(progress=lambda done, total: calls.append((done, total)))

    total = engine.stats().chunks
    assert total > 8
    assert len(calls) >= total // 4  # one step per slice of four chunks, not one for the whole article
    assert calls[-1] == (total, total)


def test_slices_give_each_sentence_once_inside_a_chunk_of_its_slice(engine: Engine) -> None:
    text = " ".join(f"Sentence number {n} talks about the river crossing and its ferry." for n in range(120))
    chunks, spans = engine._split(text)

    slices = list(_slices(chunks, spans, 3))

    assert [c for some, _ in slices for c in some] == chunks
    assert [s for _, mine in slices for s in mine] == spans
    for some, mine in slices:
        assert all(any(c.start <= s.start and s.end <= c.end for c in some) for s in mine)


# --- the command line ----------------------------------------------------------------------------------


def test_feedback_export_writes_both_files_from_the_command_line(
    engine: Engine, ids: dict[str, int], settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    liked = engine.record_answer(engine.ask(QUESTIONS["ferry"]))
    engine.vote(liked, "default", "ann", up=True)
    disliked = engine.record_answer(engine.ask(QUESTIONS["phone"]))
    engine.vote(disliked, "default", "ann", up=False)
    engine.close()

    code = cli(["feedback", "export", str(tmp_path / "votes.json"), "--data-dir", str(settings.data_dir)])

    assert code == 0
    assert capsys.readouterr().out.startswith(
        f"wrote 1 upvoted answer to {tmp_path / 'votes.json'} and 1 downvoted answer to "
        f"{tmp_path / 'votes.downvoted.json'}"
    )
    [up] = evaluation.load_squad(tmp_path / "votes.json")
    [down] = evaluation.load_squad(tmp_path / "votes.downvoted.json")
    assert up["paragraphs"][0]["qas"][0]["question"] == QUESTIONS["ferry"]
    assert down["paragraphs"][0]["qas"][0]["question"] == QUESTIONS["phone"]


def test_feedback_export_of_another_collection_is_empty(
    engine: Engine, ids: dict[str, int], settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine.vote(engine.record_answer(engine.ask(QUESTIONS["ferry"])), "default", "ann", up=True)
    engine.close()
    args = ["feedback", "export", str(tmp_path / "votes.json"), "--collection", "other"]

    assert cli([*args, "--data-dir", str(settings.data_dir)]) == 0
    assert "wrote 0 upvoted answers" in capsys.readouterr().out
    assert json.loads((tmp_path / "votes.json").read_text())["data"] == []


def test_ask_on_the_command_line_can_be_limited_to_one_article(
    engine: Engine, ids: dict[str, int], settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    engine.close()
    argv = ["ask", QUESTIONS["ferry"], "--article", f"#{ids['phone']}", "--json", "--data-dir", str(settings.data_dir)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("index.service.load_embedder", lambda _settings: HashEmbedder())
        assert cli(argv) == 0
    answer = json.loads(capsys.readouterr().out)
    assert {r["article_id"] for r in answer["results"]} == {ids["phone"]}
    assert answer["scope"] == [ids["phone"]]
