"""Sentence splitting and chunking: offsets map back to the text exactly, and every chunk fits the model."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from index.chunking import chunk_sentences, fit_sentences, split_sentences
from index.embedding import SentenceTransformerEmbedder
from index.models import Chunk, Span
from index.service import Engine


def count_words(texts: Sequence[str]) -> list[int]:
    """A token counter where one token is one whitespace-separated word."""
    return [len(t.split()) for t in texts]


def chunk(text: str, max_tokens: int, overlap: int, counter=count_words) -> tuple[list[Span], list[Chunk]]:
    """Run the engine's chunking pipeline: sentences, fitted to the limit, packed into chunks."""
    spans, sizes = fit_sentences(text, split_sentences(text), counter, max_tokens)
    return spans, chunk_sentences(text, spans, sizes, max_tokens, overlap)


# --- strategies ----------------------------------------------------------------------------------

WORDS = st.sampled_from(
    [
        "the", "minister", "said", "Mr.", "Dr.", "U.S.", "officials", "call", "on", "Jan.", "5", "3.5%",
        "p.m.", "“quoted”", "(aside)", "e.g.", "no.", "well-known", "café", "naïve", "2024", "x", "…",
    ]
)  # fmt: skip
SPACES = st.sampled_from([" ", " ", " ", "  ", "\t", "\u00a0", "\n", "\n\n", " \n "])
ENDS = st.sampled_from([".", "!", "?", "...", ".”", "", ":"])


@st.composite
def prose(draw: st.DrawFn) -> str:
    """News-like text: sentences of words with odd spacing, abbreviations and line breaks."""
    sentences = []
    for _ in range(draw(st.integers(1, 12))):
        words = draw(st.lists(WORDS, min_size=1, max_size=30))
        gaps = draw(st.lists(SPACES, min_size=len(words), max_size=len(words)))
        body = "".join(w + g for w, g in zip(words, gaps, strict=True)).rstrip()
        sentences.append(body + draw(ENDS))
    joiners = draw(st.lists(SPACES, min_size=len(sentences), max_size=len(sentences)))
    lead = draw(st.sampled_from(["", " ", "\n", "  \n"]))
    return lead + "".join(s + j for s, j in zip(sentences, joiners, strict=True))


ANY_TEXT = st.one_of(prose(), st.text(max_size=300))
CHUNKING = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- sentences -----------------------------------------------------------------------------------


@CHUNKING
@given(text=ANY_TEXT)
def test_sentence_spans_never_start_or_end_with_whitespace(text: str) -> None:
    for span in split_sentences(text):
        piece = text[span.start : span.end]
        assert piece
        assert piece == piece.strip()


@CHUNKING
@given(text=ANY_TEXT)
def test_sentence_spans_cover_every_non_space_character_exactly_once(text: str) -> None:
    covered = [0] * len(text)
    for span in split_sentences(text):
        for i in range(span.start, span.end):
            covered[i] += 1
    for i, char in enumerate(text):
        assert covered[i] <= 1, f"character {i} ({char!r}) is in two sentences"
        if not char.isspace():
            assert covered[i] == 1, f"character {i} ({char!r}) is in no sentence"


@CHUNKING
@given(text=ANY_TEXT)
def test_sentence_spans_are_in_text_order(text: str) -> None:
    spans = split_sentences(text)
    for before, after in itertools.pairwise(spans):
        assert before.end <= after.start


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mr. Smith met U.S. officials. They talked.", ["Mr. Smith met U.S. officials.", "They talked."]),
        ("Dr. Jones arrived at 3 p.m. on Jan. 5. He left.", ["Dr. Jones arrived at 3 p.m. on Jan. 5.", "He left."]),
        ("Growth was 3.5 per cent. Prices rose.", ["Growth was 3.5 per cent.", "Prices rose."]),
        ("Ms. Okafor, e.g. the chair, spoke first.", ["Ms. Okafor, e.g. the chair, spoke first."]),
        ("The U.K. and the E.U. agreed. Talks end Friday.", ["The U.K. and the E.U. agreed.", "Talks end Friday."]),
        ("Is it true? Yes! It is.", ["Is it true?", "Yes!", "It is."]),
    ],
)
def test_abbreviations_and_numbers_do_not_split_sentences(text: str, expected: list[str]) -> None:
    assert [text[s.start : s.end] for s in split_sentences(text)] == expected


@CHUNKING
@given(text=prose())
def test_a_line_splits_where_pysbds_own_segmenter_splits_it(text: str) -> None:
    # The engine reads pysbd's sentences without its segment(), which locates each one with a regex of its own.
    import pysbd

    line = " ".join(text.split())[:900]
    body = line.rstrip().rstrip("\"'”’)]").rstrip(".!?…")
    assume(any(mark in body for mark in ".!?…"))  # a line with no inner sentence end never reaches pysbd
    theirs = [s.strip() for s in pysbd.Segmenter(language="en", clean=False).segment(line) if s.strip()]
    assert [line[s.start : s.end] for s in split_sentences(line)] == theirs


@st.composite
def abbreviated(draw: st.DrawFn) -> str:
    """A line dense with pysbd's own abbreviations, in any case, with or without their full stop, among words,
    numbers and the characters whose case folding differs from lower()."""
    from pysbd.lang.english import English

    abbreviations = st.sampled_from(English.Abbreviation.ABBREVIATIONS)
    cased = abbreviations.flatmap(lambda a: st.sampled_from([a, a.upper(), a.title()]))
    token = st.one_of(
        st.tuples(cased, st.sampled_from([".", ". ", "", ".:", ".-", ".,"])).map("".join),
        st.sampled_from(["Smith", "said", "5", "(1)", "I", "The", "north", "now", "U.S.", "“"]),
        st.sampled_from(["İ.", "ı.", "ſt.", "K.", "İ", "ſ"]),
    )
    words = draw(st.lists(token, min_size=1, max_size=25))
    return " ".join(words) + draw(st.sampled_from([".", "", "?"]))


@settings(max_examples=300, deadline=None)
@given(line=abbreviated())
def test_the_abbreviation_pass_changes_lines_exactly_as_pysbds_does(line: str) -> None:
    # The engine's pysbd skips the abbreviations a line never has with a full stop; nothing else may change.
    import pysbd

    from index.chunking import _segmenter

    theirs = pysbd.Segmenter(language="en", clean=False).processor(line).process()
    assert _segmenter().processor(line).process() == theirs


def test_sentences_never_cross_a_line_break() -> None:
    text = "A headline without a full stop\nThe first paragraph begins here. It goes on."
    assert [text[s.start : s.end] for s in split_sentences(text)] == [
        "A headline without a full stop",
        "The first paragraph begins here.",
        "It goes on.",
    ]


# --- chunks --------------------------------------------------------------------------------------

LIMITS = st.integers(min_value=3, max_value=60)
OVERLAPS = st.integers(min_value=0, max_value=80)


@CHUNKING
@given(text=ANY_TEXT, max_tokens=LIMITS, overlap=OVERLAPS)
def test_chunk_text_is_the_slice_of_the_article_at_its_offsets(text: str, max_tokens: int, overlap: int) -> None:
    for c in chunk(text, max_tokens, overlap)[1]:
        assert 0 <= c.start < c.end <= len(text)
        assert c.text == text[c.start : c.end]


@CHUNKING
@given(text=ANY_TEXT, max_tokens=LIMITS, overlap=OVERLAPS)
def test_every_sentence_lies_inside_some_chunk(text: str, max_tokens: int, overlap: int) -> None:
    spans, chunks = chunk(text, max_tokens, overlap)
    for span in spans:
        assert any(c.start <= span.start and span.end <= c.end for c in chunks), text[span.start : span.end]


@CHUNKING
@given(text=ANY_TEXT, max_tokens=LIMITS, overlap=OVERLAPS)
def test_every_non_space_character_lands_in_a_chunk(text: str, max_tokens: int, overlap: int) -> None:
    chunks = chunk(text, max_tokens, overlap)[1]
    for i, char in enumerate(text):
        if not char.isspace():
            assert any(c.start <= i < c.end for c in chunks), f"character {i} ({char!r}) is in no chunk"


@CHUNKING
@given(text=ANY_TEXT, max_tokens=LIMITS, overlap=OVERLAPS)
def test_chunks_never_exceed_the_token_limit(text: str, max_tokens: int, overlap: int) -> None:
    for c in chunk(text, max_tokens, overlap)[1]:
        assert len(c.text.split()) <= max_tokens, c.text


@CHUNKING
@given(text=ANY_TEXT, max_tokens=LIMITS, overlap=OVERLAPS)
@example(text="0!0?0?0", max_tokens=3, overlap=0)
def test_overlap_always_moves_forward(text: str, max_tokens: int, overlap: int) -> None:
    spans, chunks = chunk(text, max_tokens, overlap)
    # Each chunk starts on a new sentence (pysbd may split inside a run without spaces: "0!0?0?0").
    assert len(chunks) <= max(1, len(spans))
    for before, after in itertools.pairwise(chunks):
        assert after.start > before.start
        assert after.end > before.end


@CHUNKING
@given(text=ANY_TEXT, max_tokens=LIMITS)
def test_without_overlap_chunks_do_not_share_text(text: str, max_tokens: int) -> None:
    chunks = chunk(text, max_tokens, 0)[1]
    for before, after in itertools.pairwise(chunks):
        assert before.end <= after.start


def test_overlap_repeats_whole_trailing_sentences() -> None:
    text = " ".join(f"Sentence number {n} has six words." for n in range(1, 11))
    spans, chunks = chunk(text, max_tokens=20, overlap=8)
    sentence_starts = {s.start for s in spans}
    assert len(chunks) > 1
    for before, after in itertools.pairwise(chunks):
        assert after.start < before.end, "consecutive chunks should overlap"
        assert after.start in sentence_starts, "the overlap should begin at a sentence start"


@CHUNKING
@given(
    words=st.lists(st.sampled_from(["alpha", "beta", "U.S.", "3.5", "café", "well-known"]), min_size=1, max_size=200),
    max_tokens=st.integers(min_value=1, max_value=25),
)
def test_overlong_sentence_is_split_at_word_boundaries(words: list[str], max_tokens: int) -> None:
    text = " ".join(words) + "."
    pieces, sizes = fit_sentences(text, split_sentences(text), count_words, max_tokens)
    for piece, size in zip(pieces, sizes, strict=True):
        assert piece.start == 0 or text[piece.start - 1].isspace()
        assert piece.end == len(text) or text[piece.end].isspace()
        assert size == len(text[piece.start : piece.end].split()) <= max_tokens
    assert " ".join(text[p.start : p.end] for p in pieces) == text


def test_short_sentences_are_kept_whole() -> None:
    text = "One two three. Four five."
    pieces, sizes = fit_sentences(text, split_sentences(text), count_words, 10)
    assert [text[p.start : p.end] for p in pieces] == ["One two three.", "Four five."]
    assert sizes == [3, 2]


def test_empty_text_makes_no_chunks() -> None:
    assert chunk("", 10, 2)[1] == []
    assert chunk(" \n\n \t", 10, 2)[1] == []


# --- the real model's tokenizer ------------------------------------------------------------------

LONG_ARTICLE_PARAGRAPHS = [
    "HARBOURTON — The regional transit authority voted 7-2 on Tuesday night to approve a $412 million plan "
    "that would replace the city's ageing diesel buses with battery-electric models by 2031, ending a "
    "debate that had stretched across four public hearings and more than 600 written submissions.",
    "Supporters said the vote marked a turning point. “For twenty years we have talked about cleaner air on "
    "Dock Street, and tonight we finally put money behind it,” said board chair Lucinda Ferreira-Whitcombe, "
    "who has sat on the board since 2014.",
    "Opponents, including board members Gordon Tsai and Abimbola Nwachukwu-Reyes, argued that the authority "
    "had underestimated the cost of new depot chargers, grid upgrades, replacement batteries after the "
    "eighth year of service, extra maintenance staff, retraining for 340 mechanics, temporary leased buses "
    "during the changeover, insurance for the new fleet, software licences for charge scheduling, and the "
    "risk that a single supplier, Voltacoach Manufacturing of Ostrava, would be unable to deliver 180 "
    "vehicles on the timetable set out in Appendix C of the procurement document, which runs to 212 pages "
    "and which several members admitted they had not finished reading before the vote, a point Mr. Tsai "
    "raised twice during the debate, saying that a decision of this size deserved more than a skim, and "
    "that the public, who would ultimately pay through fares and property taxes, deserved a clearer account "
    "of where each dollar would go, how overruns would be handled, who would be accountable if the buses "
    "arrived late, and what would happen to the diesel fleet, which still has between four and nine years "
    "of service life left depending on the model, mileage, and the condition of each engine.",
    "The plan's financing relies on a federal grant of $160 million, a state loan of $95 million at 2.1% "
    "interest, and a bond issue. According to the authority's finance director, Priya Raghunathan, fares "
    "would not rise before 2027. See https://transit.example.org/board/2024-06-11/minutes?item=7&format=pdf "
    "for the full minutes.",
    "Residents who spoke at the hearing were divided. Marguerite O'Donnell, 71, who rides the No. 14 bus "
    "daily, said she welcomed quieter streets. Others worried about winter range: electric buses in colder "
    "cities have lost up to 30% of their range in January, according to a 2022 study by the Northern "
    "Transit Research Consortium.",
] * 6


@pytest.mark.parametrize("max_tokens", [64, 128, None])
def test_every_chunk_of_a_long_article_fits_the_real_model(
    real_embedder: SentenceTransformerEmbedder, max_tokens: int | None
) -> None:
    limit = max_tokens or real_embedder.max_tokens
    text = "\n\n".join(LONG_ARTICLE_PARAGRAPHS)
    spans, chunks = chunk(text, limit, overlap=40, counter=real_embedder.count_tokens)
    assert len(chunks) > 5
    counts = real_embedder.count_tokens([c.text for c in chunks])
    assert max(counts) <= limit <= real_embedder.max_tokens
    assert all(any(c.start <= s.start and s.end <= c.end for c in chunks) for s in spans)


def test_every_chunk_the_engine_stores_fits_the_real_model(real_engine: Engine) -> None:
    article = real_engine.add_text("\n\n".join(LONG_ARTICLE_PARAGRAPHS[:10])).article
    counts = real_engine.embedder.count_tokens(real_engine.store.chunk_texts("default")[1])
    assert len(counts) == article.chunks > 1
    assert max(counts) <= real_engine.embedder.max_tokens
