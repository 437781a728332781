"""The engine: articles in, quoted answers out. No Discord here."""

from index.models import AddResult, Answer, Article, Excerpt, Stats
from index.service import Engine
from index.settings import Settings

__all__ = ["AddResult", "Answer", "Article", "Engine", "Excerpt", "Settings", "Stats"]
