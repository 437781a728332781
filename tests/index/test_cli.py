"""``python -m index`` end to end, in subprocesses, with the real packaged model."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from index.store import Store
from tests.index.articles import NEWS_PAGE, SPY_CALL, SPY_CALL_TITLE, STADIUM_VOTE
from tests.index.conftest import CliLibrary, run_cli
from tests.index.local_server import LocalServer, respond

TITLES = {
    "Rovers fans back move to new riverside stadium",
    "Minister and ministry at odds over phone call with port chief",
    "Bakery workers walk out over night-shift pay",
    "Ferry operator fined after engine fire on Lake Varrow crossing",
    "County libraries to open on Sundays",
}


def listed(data_dir: Path, *extra: str) -> list[dict]:
    result = run_cli("list", "--json", *extra, data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_one_line_error(result: subprocess.CompletedProcess[str], exit_code: int | None = None) -> None:
    assert result.returncode != 0
    if exit_code is not None:
        assert result.returncode == exit_code
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")
    assert result.stderr.strip().count("\n") == 0, result.stderr


# --- adding, listing, stats ----------------------------------------------------------------------


def test_add_takes_text_files_stdin_and_urls_in_one_go(cli_library: CliLibrary) -> None:
    results = json.loads(cli_library.added.stdout)
    assert [r["article"]["source"] for r in results] == ["text", "markdown", "text", "file", "url"]
    assert {r["article"]["title"] for r in results} == TITLES
    assert not any(r["duplicate"] for r in results)


def test_list_shows_every_added_article(cli_library: CliLibrary) -> None:
    articles = listed(cli_library.data_dir)
    assert {a["title"] for a in articles} == TITLES
    assert all(a["chunks"] >= 1 and a["chars"] > 100 for a in articles)


def test_an_added_url_keeps_its_address(cli_library: CliLibrary) -> None:
    [library] = [a for a in listed(cli_library.data_dir) if a["title"] == "County libraries to open on Sundays"]
    assert library["url"] == cli_library.library_url


def test_list_in_plain_text_shows_ids_and_titles(cli_library: CliLibrary) -> None:
    result = run_cli("list", data_dir=cli_library.data_dir)
    assert result.returncode == 0
    for article in listed(cli_library.data_dir):
        assert f"#{article['id']}" in result.stdout
        assert article["title"][:60] in result.stdout


def test_data_dir_may_come_before_the_command(cli_library: CliLibrary) -> None:
    result = run_cli("--data-dir", str(cli_library.data_dir), "list", "--json", data_dir=cli_library.data_dir)
    assert result.returncode == 0
    assert len(json.loads(result.stdout)) == len(TITLES)


def test_stats_count_the_collection(cli_library: CliLibrary) -> None:
    result = run_cli("stats", "--json", data_dir=cli_library.data_dir)
    assert result.returncode == 0
    stats = json.loads(result.stdout)
    assert stats["articles"] == len(TITLES)
    assert stats["chunks"] == sum(a["chunks"] for a in listed(cli_library.data_dir))
    assert stats["model"] == "packaged:all-MiniLM-L6-v2"
    assert stats["dimension"] == 384
    assert stats["index_bytes"] > 0


def test_another_collection_starts_empty(cli_library: CliLibrary) -> None:
    assert listed(cli_library.data_dir, "--collection", "guild-42") == []


# --- asking --------------------------------------------------------------------------------------


def test_ask_json_lists_excerpts_with_their_sources_in_rank_order(cli_phone_answer: dict) -> None:
    results = cli_phone_answer["results"]
    assert 1 <= len(results) <= 3
    for r in results:
        assert {"excerpt", "start", "end", "article_id", "title", "url", "score"} <= r.keys()
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)


def test_ask_json_excerpts_are_verbatim_slices_of_the_stored_articles(
    cli_library: CliLibrary, cli_phone_answer: dict
) -> None:
    store = Store(cli_library.data_dir / "newsquote.db")
    try:
        for r in cli_phone_answer["results"]:
            assert r["excerpt"] == store.article_text(r["article_id"])[r["start"] : r["end"]]
            assert len(r["excerpt"]) <= 400
    finally:
        store.close()


# --- changing the collection ---------------------------------------------------------------------


def test_remove_takes_the_article_out_of_the_list(cli_copy: Path) -> None:
    [ferry] = [a for a in listed(cli_copy) if a["title"].startswith("Ferry operator")]
    result = run_cli("remove", str(ferry["id"]), data_dir=cli_copy)
    assert result.returncode == 0
    assert f"removed #{ferry['id']}" in result.stdout
    assert ferry["id"] not in {a["id"] for a in listed(cli_copy)}


@pytest.mark.slow
def test_rebuild_shows_progress_and_keeps_the_answers(cli_copy: Path, cli_phone_answer: dict) -> None:
    stats = json.loads(run_cli("stats", "--json", data_dir=cli_copy).stdout)
    result = run_cli("rebuild", data_dir=cli_copy)
    assert result.returncode == 0, result.stderr
    assert f"rebuilt 'default': {stats['articles']} articles, {stats['chunks']} chunks" in result.stdout
    assert f"{stats['chunks']}/{stats['chunks']}" in result.stderr  # the progress bar reached the end
    again = run_cli("ask", "who claimed the call happened?", "--json", data_dir=cli_copy)
    assert json.loads(again.stdout)["results"] == cli_phone_answer["results"]


# --- mistakes get one line and a non-zero exit ----------------------------------------------------


@pytest.mark.parametrize("question", ["", "   "], ids=["empty", "spaces"])
def test_an_empty_question_is_one_line_error(cli_library: CliLibrary, question: str) -> None:
    result = run_cli("ask", question, data_dir=cli_library.data_dir)
    assert_one_line_error(result, exit_code=2)
    assert "question is empty" in result.stderr


def test_asking_an_empty_collection_is_one_line_error(cli_library: CliLibrary) -> None:
    result = run_cli("ask", "who claimed the call happened?", "--collection", "guild-42", data_dir=cli_library.data_dir)
    assert_one_line_error(result, exit_code=2)
    assert "No articles have been added" in result.stderr


def test_adding_a_missing_file_is_one_line_error(tmp_path: Path) -> None:
    result = run_cli("add", str(tmp_path / "nowhere.txt"), data_dir=tmp_path / "data")
    assert_one_line_error(result, exit_code=2)
    assert "nowhere.txt" in result.stderr


def test_adding_an_unsupported_file_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.7 not an article")
    result = run_cli("add", str(tmp_path / "report.pdf"), data_dir=tmp_path / "data")
    assert_one_line_error(result, exit_code=2)
    assert "Unsupported file type '.pdf'" in result.stderr


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/story", "http://169.254.169.254/latest/meta-data/"])
def test_adding_a_blocked_url_is_one_line_error(tmp_path: Path, url: str) -> None:
    result = run_cli("add", url, data_dir=tmp_path / "data")
    assert_one_line_error(result, exit_code=2)
    assert "Refusing to fetch" in result.stderr


def test_adding_nothing_is_one_line_error(tmp_path: Path) -> None:
    result = run_cli("add", data_dir=tmp_path / "data")
    assert_one_line_error(result, exit_code=2)


def test_a_bad_file_among_good_ones_is_named_and_the_others_are_added_in_order(tmp_path: Path) -> None:
    (tmp_path / "stadium.txt").write_text(STADIUM_VOTE, encoding="utf-8")
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.7 not an article")
    (tmp_path / "call.txt").write_text(SPY_CALL, encoding="utf-8")
    files = [str(tmp_path / name) for name in ("stadium.txt", "report.pdf", "call.txt")]
    result = run_cli("add", *files, data_dir=tmp_path / "data")
    assert result.returncode == 2
    assert_one_line_error(subprocess.CompletedProcess([], 2, "", result.stderr))
    assert "report.pdf" in result.stderr
    assert [line.split("'")[1] for line in result.stdout.splitlines()] == [
        "Rovers fans back move to new riverside stadium",
        SPY_CALL_TITLE,
    ]
    assert [a["title"] for a in listed(tmp_path / "data")] == [
        SPY_CALL_TITLE,
        "Rovers fans back move to new riverside stadium",
    ]


def test_removing_a_missing_article_is_one_line_error(cli_library: CliLibrary) -> None:
    result = run_cli("remove", "9999", data_dir=cli_library.data_dir)
    assert_one_line_error(result, exit_code=2)
    assert "no article #9999" in result.stderr


def test_a_failed_add_leaves_the_collection_unchanged(cli_copy: Path) -> None:
    before = listed(cli_copy)
    run_cli("add", "http://127.0.0.1:9/story", data_dir=cli_copy)
    assert listed(cli_copy) == before


def test_adding_the_same_text_again_says_it_is_already_stored(cli_library: CliLibrary) -> None:
    [stadium] = [a for a in listed(cli_library.data_dir) if a["title"].startswith("Rovers")]
    result = run_cli("add", "--text", STADIUM_VOTE.replace("\n\n", "\n\n\n"), data_dir=cli_library.data_dir)
    assert result.returncode == 0
    assert f"already stored: #{stadium['id']}" in result.stdout
    assert "nothing added" in result.stdout
    assert len(listed(cli_library.data_dir)) == len(TITLES)


def test_a_url_that_answers_404_is_one_line_error(tmp_path: Path, server: LocalServer) -> None:
    result = run_cli("add", server.url("/gone"), data_dir=tmp_path / "data", env={"NEWSQUOTE_ALLOW_PRIVATE_HOSTS": "1"})
    assert_one_line_error(result)
    assert "HTTP 404" in result.stderr


def test_a_data_dir_that_is_a_file_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a directory")
    assert_one_line_error(run_cli("list", data_dir=tmp_path / "data"), exit_code=2)


def test_an_invalid_setting_is_one_line_error_naming_the_setting(tmp_path: Path) -> None:
    result = run_cli("list", data_dir=tmp_path / "data", env={"NEWSQUOTE_FETCH_TIMEOUT": "soon"})
    assert_one_line_error(result, exit_code=2)
    assert "fetch_timeout" in result.stderr.lower()


@pytest.mark.slow
def test_a_model_that_cannot_be_loaded_is_one_line_error(cli_library: CliLibrary) -> None:
    result = run_cli(
        "ask", "who claimed the call happened?", data_dir=cli_library.data_dir, env={"NEWSQUOTE_MODEL": "/no/model"}
    )
    assert_one_line_error(result, exit_code=2)
    assert "Could not load embedding model '/no/model'" in result.stderr


def test_an_html_file_and_an_html_page_at_a_url_are_both_extracted(tmp_path: Path, server: LocalServer) -> None:
    """The whole extraction stack (trafilatura, jusText, lxml_html_clean) as an installed user meets it."""
    paragraphs = "".join(f"<p>{p}</p>" for p in SPY_CALL.split("\n\n")[1:])
    server.routes["/spy-call"] = respond(
        f"<html><head><title>{SPY_CALL_TITLE}</title></head><body><article><h1>{SPY_CALL_TITLE}</h1>"
        f"{paragraphs}</article></body></html>"
    )
    page = tmp_path / "ferry.html"
    page.write_text(NEWS_PAGE, encoding="utf-8")

    result = run_cli(
        "add",
        "--json",
        str(page),
        server.url("/spy-call"),
        data_dir=tmp_path / "data",
        env={"NEWSQUOTE_ALLOW_PRIVATE_HOSTS": "1"},
    )

    assert result.returncode == 0, result.stderr
    titles = [r["article"]["title"] for r in json.loads(result.stdout)]
    assert titles == ["Ferry operator fined after engine fire on Lake Varrow crossing", SPY_CALL_TITLE]
