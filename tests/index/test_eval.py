"""The evaluation command on a tiny SQuAD v1.1 file written for the test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from index import eval as evaluation
from index.service import Engine

SQUAD = {
    "version": "1.1",
    "data": [
        {
            "title": "Harbour_dredging",
            "paragraphs": [
                {
                    "context": "The port authority began dredging the eastern channel in May. The work cost 12 million "
                    "pounds and was paid for by a government grant.",
                    "qas": [
                        {
                            "id": "q1",
                            "question": "When did the dredging begin?",
                            "answers": [{"text": "May", "answer_start": 58}],
                        },
                        {
                            "id": "q2",
                            "question": "Who paid for the dredging work?",
                            "answers": [{"text": "a government grant", "answer_start": 118}],
                        },
                    ],
                }
            ],
        },
        {
            "title": "Library_hours",
            "paragraphs": [
                {
                    "context": "The county libraries will open on Sunday afternoons. Twelve new librarians "
                    "will be hired "
                    "to staff the extra hours.",
                    "qas": [
                        {
                            "id": "q3",
                            "question": "How many librarians will be hired?",
                            "answers": [{"text": "Twelve", "answer_start": 53}],
                        },
                    ],
                }
            ],
        },
    ],
}
KEYS = {
    "excerpt_hit@1",
    "excerpt_hit@3",
    "article_hit@1",
    "mrr@10",
    "mean_excerpt_chars",
    "max_excerpt_chars",
    "verbatim_share",
    "ingest_chunks_per_s",
    "ask_p50_ms",
    "ask_p95_ms",
}


def test_evaluate_reports_every_figure_with_shares_as_fractions(engine: Engine) -> None:
    figures = evaluation.evaluate(engine, SQUAD["data"], with_baselines=True)

    assert figures.keys() >= KEYS
    assert figures["questions"] == 3
    for key in ("excerpt_hit@1", "excerpt_hit@3", "article_hit@1", "verbatim_share", "baseline_rrf_hit@1"):
        assert 0.0 <= figures[key] <= 1.0
    assert figures["verbatim_share"] == 1.0
    assert figures["excerpt_hit@1"] <= figures["excerpt_hit@3"]
    assert 0 < figures["max_excerpt_chars"] <= 400


def test_eval_command_prints_json_with_the_documented_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(SQUAD))

    assert evaluation.main([str(path), "--json"]) == 0

    figures = json.loads(capsys.readouterr().out)
    assert figures.keys() >= KEYS
    assert figures["excerpt_hit@3"] == 1.0  # three easy questions, the real model


def test_eval_command_refuses_a_file_that_is_not_squad(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "not-squad.json"
    path.write_text('{"rows": []}')

    assert evaluation.main([str(path)]) == 2
    assert "SQuAD" in capsys.readouterr().err


def test_a_document_too_short_to_index_is_counted_and_its_questions_missed(engine: Engine) -> None:
    short = {
        "title": "Stub",
        "paragraphs": [
            {
                "context": "Too short.",
                "qas": [{"id": "q4", "question": "What is it?", "answers": [{"text": "short", "answer_start": 4}]}],
            }
        ],
    }
    errors: list[dict] = []

    figures = evaluation.evaluate(engine, [short, *SQUAD["data"]], errors=errors)

    assert figures["documents_not_indexed"] == 1
    assert figures["articles"] == 2
    assert figures["questions"] == 4
    assert figures["excerpt_hit@1"] <= 0.75
    assert any(e["question"] == "What is it?" and not e["indexed"] for e in errors)


def test_errors_file_lists_each_rank_1_miss_with_its_gold_and_excerpts(tmp_path: Path) -> None:
    path, misses = tmp_path / "tiny.json", tmp_path / "misses.json"
    data = json.loads(json.dumps(SQUAD))
    data["data"][0]["paragraphs"][0]["qas"][0]["answers"] = [{"text": "not in the text at all", "answer_start": 0}]
    path.write_text(json.dumps(data))

    assert evaluation.main([str(path), "--json", "--errors", str(misses)]) == 0

    written = json.loads(misses.read_text())
    assert [e["question"] for e in written] == ["When did the dredging begin?"]
    assert written[0]["answers"] == ["not in the text at all"]
    assert 1 <= len(written[0]["excerpts"]) <= 3
