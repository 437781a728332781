"""``bot.render`` without Discord: verbatim quotes, highlighting, and every Discord limit."""

from __future__ import annotations

import itertools

import discord
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot import render
from index.models import AddResult, Answer, Article, RebuildResult, Stats
from tests.bot.support import assert_fits, make_excerpt, quoted, read_markdown

# No ':' so no URL can form: URLs are deliberately left unescaped so Discord still links them.
TEXT = st.text(st.characters(codec="utf-8", exclude_characters=":"), max_size=300)
SENTENCE = "The committee heard that the budget would grow again next year. "


def payload(reply: render.Reply) -> dict[str, object]:
    return {"content": reply.content, "embeds": [e.to_dict() for e in reply.embeds]}


def article(n: int = 1, title: str = "A title", url: str | None = "https://news.example/a", **extra: object) -> Article:
    fields: dict[str, object] = {
        "id": n,
        "collection": "guild-1",
        "title": title,
        "url": url,
        "byline": None,
        "published": None,
        "source": "html",
        "added_by": "1234",
        "added_at": "2026-11-25T13:00:00+00:00",
        "chars": 5000,
        "chunks": 7,
    }
    return Article(**(fields | extra))  # type: ignore[arg-type]


# --- escaping -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("*bold* and _it_", r"\*bold\* and \_it\_"),
        ("`code` ~~gone~~ ||spoiler||", r"\`code\` \~\~gone\~\~ \|\|spoiler\|\|"),
        ("[click](https://evil.example)", r"\[click](https://evil.example)"),
        ("> not a quote", r"\> not a quote"),
        ("# Not a heading\n## nor this", "\\# Not a heading\n\\## nor this"),
        ("-# not small\n- not a list", "\\-# not small\n\\- not a list"),
        ("1. not a list", r"1\. not a list"),
        ("@everyone and @here", r"\@everyone and \@here"),
        ("<@123> <@&456> <#789> <t:1700000000>", r"\<@123> \<@&456> \<#789> \<t:1700000000>"),
        ("a \\ backslash", "a \\\\ backslash"),
        ("see https://news.example/a_b*c for more", "see https://news.example/a_b*c for more"),
        ("#12, well-known, 3.5 and e-mail", "#12, well-known, 3.5 and e-mail"),
    ],
)
def test_escape_neutralizes_markdown_and_mentions(text: str, escaped: str) -> None:
    assert render.escape(text) == escaped


@given(TEXT)
def test_escaped_text_reads_back_verbatim(text: str) -> None:
    assert read_markdown(render.escape(text)) == (text, [])


@given(TEXT, st.integers(1, 300))
def test_escaped_truncate_fits_and_reads_as_a_prefix(text: str, limit: int) -> None:
    out = render.escaped_truncate(text, limit)
    plain = read_markdown(out)[0]

    assert len(out) <= limit
    assert plain == text or (plain.endswith("…") and text.startswith(plain[:-1]))


# --- quoting ------------------------------------------------------------------------------------


@given(st.data(), TEXT.filter(lambda t: "\n" not in t and "\r" not in t))
def test_quote_is_verbatim_with_the_focus_in_bold(data: st.DataObject, text: str) -> None:
    a = data.draw(st.integers(0, len(text)))
    b = data.draw(st.integers(a, len(text)))

    plain, bold = quoted(render.quote(text, (a, b)))

    assert plain == text
    assert bold == ([text[a:b].strip()] if text[a:b].strip() else [])


def test_quote_bolds_a_focus_spanning_paragraphs_line_by_line() -> None:
    text = "Before. The answer starts here\n\nand ends here. After."
    focus = (text.index("The"), text.index(" After"))

    plain, bold = quoted(render.quote(text, focus))

    assert plain == text
    assert bold == ["The answer starts here", "and ends here."]


@pytest.mark.parametrize(
    ("position", "said"),
    [
        (0.0, "at the start of the article"),
        (0.41, "about 40% in"),
        (0.5, "about 50% in"),
        (0.93, "near the end of the article"),
    ],
)
def test_where_says_how_far_into_the_article(position: float, said: str) -> None:
    assert render.where(position) == said


# --- splitting long quotes ----------------------------------------------------------------------


@given(st.text(max_size=400), st.integers(1, 50))
def test_split_text_covers_everything_in_order_with_parts_that_fit(text: str, limit: int) -> None:
    parts = render.split_text(text, lambda a, b: b - a <= limit)

    assert parts[0][0] == 0
    assert parts[-1][1] == len(text)
    assert all(prev[1] == nxt[0] for prev, nxt in itertools.pairwise(parts))
    assert all(b - a <= limit for a, b in parts)


def test_split_text_cuts_at_sentence_ends_first() -> None:
    text = "One two. Three four five. Six."

    assert [text[a:b] for a, b in render.split_text(text, lambda a, b: b - a <= 12)] == [
        "One two. ",
        "Three four ",
        "five. Six.",
    ]


def test_long_excerpt_becomes_several_embeds_cut_at_sentence_ends() -> None:
    text = SENTENCE * 150
    embeds = render.excerpt_embeds(make_excerpt(text, focus=(0, len(SENTENCE)), title="Budget"))
    plains = [quoted(e.description or "")[0] for e in embeds]

    assert len(embeds) == 3
    assert all(len(e.description or "") <= render.DESCRIPTION_LIMIT for e in embeds)
    assert all(p.endswith("next year.") for p in plains)
    assert " ".join(plains) == text.strip()
    assert [e.title for e in embeds] == ["Budget", None, None]
    assert str(embeds[-1].footer.text).endswith("part 3 of 3")


@pytest.mark.parametrize(
    "text", ["x" * 10_000, "*" * 10_000, "@everyone " * 1000], ids=["one-word", "all-markup", "mentions"]
)
def test_excerpt_without_sentence_ends_is_still_cut_within_the_limit(text: str) -> None:
    embeds = render.excerpt_embeds(make_excerpt(text))

    assert all(len(e.description or "") <= render.DESCRIPTION_LIMIT for e in embeds)
    assert "".join(quoted(e.description or "")[0] for e in embeds).replace(" ", "") == text.replace(" ", "")


# --- answers ------------------------------------------------------------------------------------


def test_answer_embed_links_the_title_and_says_where() -> None:
    excerpt = make_excerpt(
        "It opens in May.", start=400, article_chars=1000, title="Bridge *news*", url="https://n.example/b"
    )
    [reply] = render.answer_replies(Answer("q", "c", True, [excerpt]))
    [embed] = reply.embeds

    assert reply.content is None
    assert (embed.title, embed.url) == (r"Bridge \*news\*", "https://n.example/b")
    assert embed.footer.text == "about 40% in · article #1"
    assert embed.description == ">>> **It opens in May.**"


@pytest.mark.parametrize("url", [None, "javascript:alert(1)", "ftp://files.example/a"])
def test_answer_embed_links_only_web_addresses(url: str | None) -> None:
    [reply] = render.answer_replies(Answer("q", "c", True, [make_excerpt("Text.", url=url)]))

    assert reply.embeds[0].url is None


def test_weak_answer_says_nothing_answers_and_labels_each_match() -> None:
    weak = [make_excerpt("Unrelated.", weak=True, article_id=n) for n in (1, 2)]
    [reply] = render.answer_replies(Answer("q", "c", False, weak))

    assert "Nothing in the indexed articles answers this." in str(reply.content)
    assert all("weak match" in (e.footer.text or "") for e in reply.embeds)


def test_answer_without_any_passage_is_just_the_notice() -> None:
    [reply] = render.answer_replies(Answer("q", "c", False, []))

    assert reply.content == f"**{render.NO_ANSWER}**"
    assert reply.embeds == []


def test_huge_answer_is_packed_into_messages_that_each_fit() -> None:
    excerpts = [make_excerpt(SENTENCE * 60, title="T" * 1000, article_id=n, weak=True) for n in range(10)]
    replies = render.answer_replies(Answer("q", "c", False, excerpts))

    assert len(replies) > 1
    for reply in replies:
        assert_fits(payload(reply))
    assert [r.content is not None for r in replies] == [True] + [False] * (len(replies) - 1)
    assert sum(len(r.embeds) for r in replies) == 10 * len(render.excerpt_embeds(excerpts[0]))


@pytest.mark.parametrize(("count", "messages"), [(1, 1), (10, 1), (11, 2), (25, 3)])
def test_pack_puts_at_most_ten_embeds_in_a_message(count: int, messages: int) -> None:
    replies = render.pack([discord.Embed(description="x") for _ in range(count)], "header")

    assert len(replies) == messages
    assert all(len(r.embeds) <= render.EMBEDS_LIMIT for r in replies)


def test_pack_starts_a_new_message_before_6000_characters() -> None:
    embeds = [discord.Embed(description="x" * 4000) for _ in range(3)]

    assert [len(r.embeds) for r in render.pack(embeds)] == [1, 1, 1]


def test_reply_without_content_sends_only_embeds() -> None:
    embed = discord.Embed(description="x")

    assert render.Reply(None, [embed]).kwargs() == {"embeds": [embed]}
    assert render.Reply("hi", []).kwargs() == {"content": "hi", "embeds": []}


# --- managing -----------------------------------------------------------------------------------


def test_articles_page_fits_whatever_the_titles_and_urls() -> None:
    long = [article(n, "T*" * 500, "https://news.example/" + "a" * 3000) for n in range(30)]

    embed = render.articles_page(long, 0, 3, 30)

    assert len(embed.fields) <= min(render.FIELDS_LIMIT, 10)
    assert_fits({"embeds": [embed.to_dict()]})


def test_articles_page_names_the_adder_and_links_the_article() -> None:
    embed = render.articles_page([article(7, "Bridge")], 0, 1, 1)
    [field] = embed.fields

    assert field.name == "#7 · Bridge"
    assert field.value == "7 chunks · 5,000 characters · added 2026-11-25 by <@1234>\nhttps://news.example/a"
    assert embed.footer.text == "Page 1 of 1 · 1 article"


def test_empty_articles_page_says_how_to_add() -> None:
    assert "/add" in (render.articles_page([], 0, 1, 0).description or "")


@pytest.mark.parametrize(
    ("result", "says"),
    [
        (AddResult(article(3, "Bridge")), "Added **Bridge** (#3): 7 chunks, 5,000 characters."),
        (AddResult(article(3, "Bridge"), duplicate=True, reason="url"), "**Bridge** (#3) has the same URL"),
        (AddResult(article(3, "Bridge"), duplicate=True, reason="text"), "**Bridge** (#3) has the same text"),
    ],
)
def test_added_says_what_happened(result: AddResult, says: str) -> None:
    assert says in render.added(result)


def test_messages_naming_an_article_fit_in_a_message_whatever_its_title() -> None:
    huge = article(1, "*" * 5000)

    assert len(render.added(AddResult(huge))) <= render.CONTENT_LIMIT
    assert len(render.removed(huge)) <= render.CONTENT_LIMIT
    assert len(render.choice_name(huge)) <= render.CHOICE_NAME_LIMIT


def test_stats_embed_fits_and_shows_the_servers_own_sizes() -> None:
    stats = Stats("guild-1", 12, 340, 2000, "m" * 3000, 384, 1_500_000, 900_000_000, 20_000)

    embed = render.stats(stats)
    fields = {f.name: f.value for f in embed.fields}

    assert_fits({"embeds": [embed.to_dict()]})
    assert (fields["Articles"], fields["Index size"], fields["Texts and vectors"]) == ("12", "1.4 MB", "19.5 KB")
    assert "858.3 MB" not in str(embed.to_dict())  # the database every server shares is nobody's size


@pytest.mark.parametrize(
    ("size", "said"),
    [(0, "0 bytes"), (1023, "1,023 bytes"), (1024, "1.0 KB"), (5 * 1024**2, "5.0 MB"), (3 * 1024**4, "3072.0 GB")],
)
def test_size_is_human_readable(size: int, said: str) -> None:
    assert render.size(size) == said


def test_progress_and_result_of_a_rebuild() -> None:
    assert render.rebuild_progress(0, 0) == "Re-embedding this server's articles… 0 of 0 chunks."
    assert render.rebuild_progress(50, 200).endswith("50 of 200 chunks (25%).")
    assert render.rebuilt(RebuildResult("c", 3, 12, 1.25)) == "Rebuilt: 3 articles, 12 chunks re-embedded in 1.2 s."


@pytest.mark.parametrize(("retry_after", "seconds"), [(0.2, 1), (9.4, 10), (29.99, 30)])
def test_cooldown_says_when_to_try_again(retry_after: float, seconds: int) -> None:
    assert render.cooldown(retry_after) == f"Slow down: try again in {seconds} s."
