"""``python -m bot`` refuses to start on a broken install, in one line that names the missing library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.bot.test_startup import REPO, clean_env


def test_a_library_that_cannot_be_imported_stops_start_up_in_one_line(tmp_path: Path) -> None:
    # A module of the same name first on the path, failing as an absent one does: what an old pip leaves.
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    missing = 'raise ModuleNotFoundError("No module named \'lxml_html_clean\'", name="lxml_html_clean")\n'
    (shadow / "lxml_html_clean.py").write_text(missing)
    env = clean_env(
        PYTHONPATH=f"{shadow}:{REPO}",
        DISCORD_TOKEN="fake-token",
        DISCORD_API_BASE_URL="http://127.0.0.1:9/api/v10",  # never reached
        NEWSQUOTE_DATA_DIR=str(tmp_path / "data"),
    )

    done = subprocess.run(
        [sys.executable, "-m", "bot"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("error: cannot import lxml_html_clean, needed to clean HTML")
    assert "pip install -e ." in done.stderr
    assert not (tmp_path / "data").exists()
