"""The model's lock goes to waiting questions in turn, not back to the article that released it."""

from __future__ import annotations

import threading
import time

from index.embedding import FairLock


def test_a_lock_released_between_batches_goes_to_the_thread_waiting_for_it() -> None:
    lock = FairLock()
    order: list[str] = []
    lock.__enter__()  # an article's batch is being encoded

    def question() -> None:
        with lock:
            order.append("question")

    waiter = threading.Thread(target=question)
    waiter.start()
    while not lock._waiting:  # the question is queued
        time.sleep(0.001)
    lock.__exit__()
    with lock:  # the article's next batch
        order.append("batch")
    waiter.join(5)
    assert order == ["question", "batch"]


def test_the_lock_is_free_again_once_every_waiter_has_had_it() -> None:
    lock = FairLock()
    entered: list[int] = []

    def work(n: int) -> None:
        with lock:
            entered.append(n)
            time.sleep(0.001)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert sorted(entered) == list(range(8))
    assert lock._free == 1
    assert not lock._waiting


def test_with_two_slots_two_hold_it_at_once_and_a_waiter_gets_the_next_free_one() -> None:
    lock = FairLock(slots=2)
    lock.__enter__()
    lock.__enter__()  # both slots taken by an article's two runs
    order: list[str] = []
    inside = threading.Event()

    def question() -> None:
        with lock:
            order.append("question")
            inside.set()

    waiter = threading.Thread(target=question)
    waiter.start()
    while not lock._waiting:
        time.sleep(0.001)
    lock.__exit__()  # one run ends: its slot goes to the question, not to the article's next run
    assert inside.wait(5)
    with lock:
        order.append("run")
    lock.__exit__()
    waiter.join(5)
    assert order == ["question", "run"]
    assert lock._free == 2
    assert not lock._waiting
