"""The embedding workers: one text at a time each, calls taking turns, errors back to their caller."""

from __future__ import annotations

import threading
import time

import pytest

from index.embedding import Lanes


def test_results_come_back_in_row_order_whatever_order_they_ran_in() -> None:
    lanes = Lanes(2, "test")
    assert lanes.map(lambda row: row * 10, [3, 1, 0, 2]) == [0, 10, 20, 30]
    assert lanes.map(lambda row: row, []) == []


def test_a_question_waits_for_the_text_running_not_for_the_whole_article() -> None:
    lanes = Lanes(1, "test")
    events: list[str] = []
    started = threading.Event()

    def article_text(row: int) -> int:
        events.append(f"article {row}")
        started.set()
        time.sleep(0.02)
        return row

    article = threading.Thread(target=lanes.map, args=(article_text, list(range(10))))
    article.start()
    assert started.wait(5)
    assert lanes.map(lambda row: events.append("question"), [0]) == [None]
    article.join(5)
    assert events.index("question") <= 2  # after the text running when it came, and at most one more
    assert len(events) == 11


def test_an_error_reaches_its_caller_and_stops_that_call_only() -> None:
    lanes = Lanes(2, "test")
    ran: list[int] = []

    def text(row: int) -> int:
        ran.append(row)
        if row == 0:
            raise ValueError("damaged text")
        time.sleep(0.01)
        return row

    with pytest.raises(ValueError, match="damaged text"):
        lanes.map(text, list(range(20)))
    assert len(ran) < 20  # the texts not yet started were dropped
    assert lanes.map(lambda row: row + 1, [1, 0]) == [1, 2]  # the workers go on serving


def test_setup_runs_on_every_worker_before_it_takes_work() -> None:
    prepared: set[int] = set()
    lanes = Lanes(2, "test", lambda: prepared.add(threading.get_ident()))
    ran_on = lanes.map(lambda row: (time.sleep(0.01), threading.get_ident())[1], list(range(8)))
    assert len(prepared) == 2
    assert set(ran_on) <= prepared


def test_closing_lets_the_running_texts_finish_and_fails_the_calls_still_waiting() -> None:
    lanes = Lanes(1, "test")
    finished: list[int] = []
    started = threading.Event()
    errors: list[BaseException] = []

    def slow(row: int) -> int:
        started.set()
        time.sleep(0.05)
        finished.append(row)
        return row

    def article() -> None:
        try:
            lanes.map(slow, list(range(10)))
        except RuntimeError as exc:
            errors.append(exc)

    caller = threading.Thread(target=article)
    caller.start()
    assert started.wait(5)
    lanes.close()
    caller.join(5)
    assert finished == [0]  # the text running when the process began to exit, and no other
    assert "exiting" in str(errors[0])
    with pytest.raises(RuntimeError, match="exiting"):
        lanes.map(lambda row: row, [0])
