"""Article numbers typed by people: only ASCII digits within SQLite's range name an article."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.__main__ import main
from index.errors import ArticleNotFoundError
from index.ids import MAX_ARTICLE_ID, looks_like_id, parse_article_id


@pytest.mark.parametrize(
    ("text", "number"),
    [("12", 12), ("#12", 12), (" 7 ", 7), ("007", 7), (str(MAX_ARTICLE_ID), MAX_ARTICLE_ID)],
)
def test_article_numbers_are_read_as_typed(text: str, number: int) -> None:
    assert parse_article_id(text) == number


@pytest.mark.parametrize(
    "text",
    ["1180591620717411303424", str(MAX_ARTICLE_ID + 1), "9" * 5000, "²", "١٢", "-3", "0", "", "#", "abc", "1e3"],
)
def test_anything_else_is_no_article(text: str) -> None:
    with pytest.raises(ArticleNotFoundError, match=r"There is no article #"):
        parse_article_id(text)


def test_the_message_shows_a_long_number_shortened() -> None:
    with pytest.raises(ArticleNotFoundError) as caught:
        parse_article_id("9" * 5000)

    assert len(str(caught.value)) < 120


@pytest.mark.parametrize(("text", "expected"), [("12", True), ("#12", True), ("²", False), ("bridge 12", False)])
def test_only_ascii_digits_look_like_a_number(text: str, expected: bool) -> None:
    assert looks_like_id(text) is expected


@pytest.mark.parametrize("article_id", ["1180591620717411303424", "²", "-1"])
def test_cli_remove_of_an_impossible_id_is_one_line_and_exit_2(
    article_id: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["remove", "--data-dir", str(tmp_path), "--", article_id])
    err = capsys.readouterr().err

    assert code == 2
    assert err.startswith("error: There is no article #")
    assert err.count("\n") == 1
