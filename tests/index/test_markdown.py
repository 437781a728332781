"""Markdown to text: what goes (markup), what stays (every word a reader sees)."""

from __future__ import annotations

import pytest

from index.markdown import to_text


@pytest.mark.parametrize(
    ("markdown", "text"),
    [
        ("### Title #\n", "Title"),
        ("## Heading ##", "Heading"),
        ("C# and F# ship this year.", "C# and F# ship this year."),
        ("#hashtag is not a heading", "#hashtag is not a heading"),
        ("Title\n=====\n\nBody.", "Title\n\nBody."),
        ("> > A nested quote\n> goes on.", "A nested quote\ngoes on."),
        ("- one\n- two\n+ three\n* four", "one\n\ntwo\n\nthree\n\nfour"),
        ("1. First point", "1. First point"),
        ("***both*** and **a *nested* b**", "both and a nested b"),
        ("Escaped \\*stars\\* stay.", "Escaped *stars* stay."),
        ("snake_case_name and _emphasis_.", "snake_case_name and emphasis."),
        ("a * b * c", "a * b * c"),
        ("Run `rm -rf *tmp*` now, or ``a ` b``.", "Run rm -rf *tmp* now, or a ` b."),
        ("An `unclosed backtick stays.", "An `unclosed backtick stays."),
        ("```python\nx = *a*\n```\nAfter.", "x = *a*\n\nAfter."),
        ("[Wiki](https://en.wikipedia.org/wiki/Foo_(bar)) page", "Wiki page"),
        ('[a link](https://x.example "with a title") here', "a link here"),
        ("[![badge](b.svg)](https://x.example) after", " after"),
        ("![alt with [brackets]](x.png) text", " text"),
        ("[not a link] and [another](", "[not a link] and [another]("),
        (
            "A [full][r], a [collapsed][] r and [r].\n\n[r]: https://x.example\n[collapsed]: /c",
            "A full, a collapsed r and r.",
        ),
        ("[unknown][ref] stays", "[unknown][ref] stays"),
        ("Above.\n\n* * *\n\nBelow.", "Above.\n\nBelow."),
    ],
    ids=[
        "closing-hashes",
        "closing-hashes-both-sides",
        "hash-in-a-word",
        "hashtag",
        "setext-heading",
        "nested-quote",
        "bullets",
        "numbered-list-keeps-numbers",
        "nested-emphasis",
        "escapes",
        "underscores-in-words",
        "lone-stars",
        "code-spans-keep-content",
        "unclosed-code-span",
        "fenced-code",
        "parentheses-in-url",
        "link-title",
        "image-inside-link",
        "brackets-in-alt-text",
        "brackets-without-links",
        "reference-links",
        "undefined-reference",
        "spaced-rule",
    ],
)
def test_markdown_markup_goes_and_words_stay(markdown: str, text: str) -> None:
    assert to_text(markdown) == text


def test_windows_line_ends_are_read_as_line_ends() -> None:
    assert to_text("# Title\r\n\r\nBody **text**.\r\n") == "Title\n\nBody text."
