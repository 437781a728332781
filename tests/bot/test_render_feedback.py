"""Rendering of what this issue added: plurals, follow-up notes, links added from a message, votes in /stats."""

from __future__ import annotations

import pytest

from bot import render
from index.models import AddResult, Answer, Article, RebuildResult, Stats
from tests.bot.support import assert_fits, make_excerpt


def article(id: int = 3, title: str = "Bridge", chunks: int = 1, chars: int = 1) -> Article:
    return Article(id, "guild-1", title, None, None, None, "text", None, "2026-11-25T10:00:00+00:00", chars, chunks)


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        (render.added(AddResult(article())), "Added **Bridge** (#3): 1 chunk, 1 character. Ask away with /ask."),
        (render.removed(article()), "Removed **Bridge** (#3, 1 chunk)."),
        (render.rebuild_progress(1, 1), "Re-embedding this server's articles… 1 of 1 chunk (100%)."),
        (render.rebuilt(RebuildResult("c", 1, 1, 0.5)), "Rebuilt: 1 article, 1 chunk re-embedded in 0.5 s."),
        (render.votes_share(1, 0), "100% \N{THUMBS UP SIGN} (1 of 1 vote)"),
        (render.votes_share(3, 1), "75% \N{THUMBS UP SIGN} (3 of 4 votes)"),
        (render.votes_share(0, 0), "No votes yet"),
    ],
)
def test_counts_of_one_are_singular(said: str, expected: str) -> None:
    assert said == expected


def test_a_page_of_one_article_says_so() -> None:
    embed = render.articles_page([article()], 0, 1, 1)
    assert embed.footer.text == "Page 1 of 1 · 1 article"
    assert embed.fields[0].value.startswith("1 chunk · 1 character · added")


def test_stats_show_the_share_of_upvotes() -> None:
    embed = render.stats(Stats("guild-1", 1, 1, 1, "m", 384, 10, 10, 10, votes_up=3, votes_down=1))
    fields = {f.name: f.value for f in embed.fields}
    assert fields["Votes, last 30 days"] == "75% \N{THUMBS UP SIGN} (3 of 4 votes)"


def test_a_widened_follow_up_says_it_left_the_previous_articles() -> None:
    answer = Answer("q", "c", True, [make_excerpt("The bridge opens in May.")], widened=True)
    [reply] = render.answer_replies(answer)
    assert reply.content == render.WIDENED


def test_more_leads_with_its_question_escaped() -> None:
    answer = Answer("q", "c", True, [make_excerpt("The bridge opens in May.")])
    [reply] = render.answer_replies(answer, lead=render.more_lead("who said *that*?"))
    assert reply.content == "More passages for: *who said \\*that\\*?*"


def test_links_added_says_what_happened_to_each_link() -> None:
    said = render.links_added(
        [
            ("https://a.example/1", AddResult(article(1, "First", chunks=4))),
            ("https://a.example/2", AddResult(article(2, "Second"), duplicate=True, reason="url")),
            ("http://127.0.0.1/x", "That address is not allowed."),
        ],
        left_out=2,
    )
    assert said.splitlines() == [
        "Added **First** (#1, 4 chunks) <https://a.example/1>",
        "Already here: **Second** (#2) <https://a.example/2>",
        "Refused <http://127.0.0.1/x>: That address is not allowed.",
        "2 more links left out: at most 3 from one message.",
    ]


def test_links_added_fits_in_a_message_whatever_the_titles_and_errors() -> None:
    outcomes: list[tuple[str, AddResult | str]] = [
        ("https://a.example/" + "x" * 2000, AddResult(article(n, "*" * 3000))) for n in range(3)
    ]
    outcomes += [("https://b.example/" + "y" * 2000, "e" * 3000)] * 2
    assert_fits({"content": render.links_added(outcomes, left_out=10)})


def test_thread_names_fit_discords_limit() -> None:
    assert len(render.thread_name("why " * 100)) <= render.THREAD_NAME_LIMIT
    assert render.thread_name("   ") == "Follow-up questions"
