"""Start-up checks: the libraries the engine imports only when an article arrives can be imported now.

The engine imports its extraction and text libraries lazily (``list`` should not pay for them), so a broken
install would otherwise show only when someone first adds a web page or a file. ``python -m bot`` calls
:func:`check_imports` before connecting; the command line can too.
"""

from __future__ import annotations

import importlib

from index.errors import ConfigError

# Leaves before the libraries that import them, so a failure names the missing piece itself.
LAZY_IMPORTS: dict[str, str] = {
    "lxml.html": "to parse HTML",
    "lxml_html_clean": "to clean HTML",
    "lxml.html.clean": "to clean HTML",
    "charset_normalizer": "to guess the encoding of text files",
    "justext": "to tell article paragraphs from boilerplate",
    "trafilatura": "to extract articles from web pages and HTML files",
    "pysbd": "to split sentences",
    "Stemmer": "to rank passages by their words",
    "feedparser": "to read RSS and Atom feeds",
    "httpx": "to fetch web pages and feeds",
}
FIX = "reinstall the project with `pip install -e .` (in its virtual environment)"


class MissingDependencyError(ConfigError):
    """A library the engine needs cannot be imported."""

    def __init__(self, module: str, purpose: str, error: ImportError) -> None:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        super().__init__(f"cannot import {module}, needed {purpose} ({reason}): {FIX}.")
        self.module = module


def check_imports(modules: dict[str, str] = LAZY_IMPORTS) -> None:
    """Import each module; raise ``MissingDependencyError`` naming the first that fails."""
    for module, purpose in modules.items():
        try:
            importlib.import_module(module)
        except ImportError as exc:
            # exc.name is the module actually missing, which may be one this module needed.
            raise MissingDependencyError(exc.name or module, purpose, exc) from exc
