"""The engine's facade: everything the CLI and the bot can do, as plain method calls."""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from index import answer, feedback, sources
from index.chunking import chunk_sentences, fit_sentences, split_sentences
from index.embedding import Embedder, SpanEmbedder, encode_pooled_parts, load_embedder, usable_cores
from index.errors import (
    AnswerNotFoundError,
    ArticleNotFoundError,
    EmptyCollectionError,
    EmptyQuestionError,
    ModelMismatchError,
    QuestionTooLongError,
    UserInputError,
)
from index.feedback import FEEDBACK_DAYS, AnswerRecord, Quote, Votes, quotes_of, unseen
from index.feeds import DEFAULT_POLL_MINUTES, Feed, FeedAdded, FeedPoll, FeedPoller
from index.lexical import token_set, tokenize
from index.models import AddResult, Answer, Article, Chunk, Excerpt, ExtractedArticle, RebuildResult, Span, Stats
from index.retrieval import DENSE_CANDIDATES, LEXICAL_CANDIDATES, RRF_K, fuse
from index.settings import Settings
from index.storage import Retrieval, Storage, open_storage
from index.store import DuplicateArticle, NewPiece, Passages, SentenceRow

Progress = Callable[[int, int], None]
log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 500
__all__ = ["DENSE_CANDIDATES", "LEXICAL_CANDIDATES", "RRF_K", "Engine"]

CHUNKS_TO_READ = 8
READ_EARLY = 16
MAX_EXCERPTS = 10

Plan = tuple[str, Sequence[Chunk], Sequence[Span]]  # a text, chunks of it and their sentences
ArticlePlan = tuple[int, str, list[Chunk], list[Span]]  # an article's id, text, chunks (or some) and their sentences
Pieces = tuple[list[NewPiece], list[NewPiece]]  # an article's chunks and sentences, embedded
Reader = Callable[[], ExtractedArticle | AddResult]  # fetches or extracts an article; AddResult: already stored
TOGETHER = 4  # add_all and rebuild hand the model at least this many batches' worth of chunks at a time


@dataclasses.dataclass(frozen=True)
class Prepared:
    """An article ready to embed: its duplicate keys, its chunks and its sentences."""

    article: ExtractedArticle
    canonical: str | None
    fingerprint: str
    chunks: list[Chunk]
    spans: list[Span]


class Engine:
    """Add, ask, list, remove, rebuild: one object, safe to call from worker threads."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self._embedder = embedder
        self._lock = threading.RLock()  # guards writes and the in-memory indexes
        self.store: Storage
        self.retrieval: Retrieval
        self.store, self.retrieval = open_storage(settings, lambda: self.embedder.dimension, self._lock)
        self._model_lock = threading.Lock()
        self._spare: bool | None = None  # whether the model leaves a core idle while it embeds a question
        self.weights = answer.Weights()
        self.feed_poller = FeedPoller(self)

    def close(self) -> None:
        self.retrieval.close()
        self.store.close()

    @property
    def embedder(self) -> Embedder:
        """The embedding model, loaded on first use (listing articles never pays for it)."""
        if self._embedder is None:
            with self._model_lock:
                if self._embedder is None:
                    self._embedder = load_embedder(self.settings)
        return self._embedder

    # --- adding ------------------------------------------------------------------------------

    def add_url(
        self, url: str, collection: str = "default", added_by: str | None = None, title: str | None = None
    ) -> AddResult:
        """Fetch a page and add its article, unless that URL is already in the collection."""
        read = self.read_url(url, collection, title)
        return read if isinstance(read, AddResult) else self._add(read, collection, added_by)

    def read_url(self, url: str, collection: str = "default", title: str | None = None) -> ExtractedArticle | AddResult:
        """Fetch a page's article for ``add_all``; a URL already in the collection is not fetched again."""
        known = self.store.find_duplicate(collection, sources.canonical_url(url), "")
        if known:
            return AddResult(known[0], duplicate=True, reason="url")
        article = sources.from_url(url, self.settings)
        if title and title.strip():
            article = dataclasses.replace(article, title=sources.given_title(title))
        return article

    def add_file(
        self, path: Path, collection: str = "default", added_by: str | None = None, title: str | None = None
    ) -> AddResult:
        return self._add(sources.from_file(path, self.settings, title), collection, added_by)

    def add_bytes(
        self,
        data: bytes,
        filename: str,
        collection: str = "default",
        added_by: str | None = None,
        title: str | None = None,
        *,
        source: str | None = None,
    ) -> AddResult:
        """Add an uploaded file (.html, .htm, .txt, .md); ``source`` overrides how a text file is recorded."""
        return self._add(sources.from_bytes(data, filename, self.settings, title, source), collection, added_by)

    def add_text(
        self,
        text: str,
        collection: str = "default",
        title: str | None = None,
        url: str | None = None,
        added_by: str | None = None,
    ) -> AddResult:
        return self._add(sources.from_text(text, self.settings, title=title, url=url), collection, added_by)

    def _add(self, article: ExtractedArticle, collection: str, added_by: str | None) -> AddResult:
        prepared = self._prepare(article, collection)
        if isinstance(prepared, AddResult):
            return prepared
        return self._store(prepared, self._embed(article.text, prepared.chunks, prepared.spans), collection, added_by)

    def add_all(
        self, readers: Iterable[Reader], collection: str = "default", added_by: str | None = None
    ) -> Iterator[AddResult | UserInputError]:
        """Add several articles, each read (fetched, extracted) by calling its reader; yield each outcome in order.

        An article that cannot be read is yielded as its error, and the others go on. The articles go to the model
        together, ``TOGETHER`` batches' worth of chunks at a time (the last window may hold fewer), and each is
        stored in its own transaction, in order, before the next articles are read: one article's few chunks leave
        a core idle at its end, as ``rebuild`` notes. An error that is not the article's (the model, the database)
        is raised; the articles yielded before it stay added.
        """
        window: list[AddResult | UserInputError | Prepared] = []
        held = 0
        for read in readers:
            try:
                got = read()
                window.append(got if isinstance(got, AddResult) else self._prepare(got, collection))
            except UserInputError as error:
                window.append(error)
            last = window[-1]
            held += len(last.chunks) if isinstance(last, Prepared) else 0
            if held >= TOGETHER * max(1, self.settings.batch_size):
                yield from self._add_window(window, collection, added_by)
                window, held = [], 0
        yield from self._add_window(window, collection, added_by)

    def _add_window(
        self, window: list[AddResult | UserInputError | Prepared], collection: str, added_by: str | None
    ) -> Iterator[AddResult | UserInputError]:
        """Embed a window's articles in one call, then store each; yield every outcome in the window's order."""
        todo = [item for item in window if isinstance(item, Prepared)]
        embedded: Iterator[Pieces] | None = None
        for item in window:
            if not isinstance(item, Prepared):
                yield item
                continue
            if embedded is None:  # only when needed: what comes before the first article need not wait for the model
                embedded = iter(self._embed_parts([(p.article.text, p.chunks, p.spans) for p in todo]))
            yield self._store(item, next(embedded), collection, added_by)

    def _prepare(self, article: ExtractedArticle, collection: str) -> Prepared | AddResult:
        """An article split and ready to embed, or the stored one it duplicates."""
        canonical = sources.canonical_url(article.url) if article.url else None
        fingerprint = sources.text_fingerprint(article.text)
        known = self.store.find_duplicate(collection, canonical, fingerprint)
        if known:
            return AddResult(known[0], duplicate=True, reason=known[1])
        self._check_model(collection)
        return Prepared(article, canonical, fingerprint, *self._split(article.text))

    def _store(
        self,
        prepared: Prepared,
        pieces: Pieces,
        collection: str,
        added_by: str | None,
    ) -> AddResult:
        article, canonical, fingerprint = prepared.article, prepared.canonical, prepared.fingerprint
        chunks, sentences = pieces
        with self._lock:
            known = self.store.find_duplicate(collection, canonical, fingerprint)  # another thread may have won
            if known:
                return AddResult(known[0], duplicate=True, reason=known[1])
            before = self.retrieval.before_write(collection)
            try:
                stored, chunk_ids = self.store.add_article(
                    collection,
                    article,
                    canonical_url=canonical,
                    text_hash=fingerprint,
                    added_by=added_by,
                    chunks=chunks,
                    sentences=sentences,
                    model=self.embedder.name,
                    dimension=self.embedder.dimension,
                )
            except DuplicateArticle as known_elsewhere:  # another process added it since we looked
                return AddResult(known_elsewhere.article, duplicate=True, reason=known_elsewhere.reason)
            self.retrieval.after_write(
                collection,
                before,
                added=(chunk_ids, np.vstack([c.vector for c in chunks])),
                added_texts=[article.text[c.start : c.end] for c in chunks],
            )
        return AddResult(stored)

    def _split(self, text: str) -> tuple[list[Chunk], list[Span]]:
        """Cut an article into sentences and into chunks that fit the model."""
        embedder = self.embedder
        limit = min(self.settings.chunk_tokens, embedder.max_tokens)
        spans, sizes = fit_sentences(text, split_sentences(text), embedder.count_tokens, limit)
        return chunk_sentences(text, spans, sizes, limit, self.settings.chunk_overlap_tokens), spans

    def _embed(self, text: str, chunks: list[Chunk], spans: list[Span]) -> Pieces:
        """Embed an article's chunks (for retrieval) and sentences (for choosing excerpts)."""
        return self._embed_parts([(text, chunks, spans)])[0]

    def _embed_parts(self, parts: Sequence[Plan]) -> list[Pieces]:
        """``_embed`` of several articles (or runs of their chunks) in one call to the model."""
        size = self.settings.batch_size
        embedder = self.embedder
        if self.settings.sentence_vectors == "pooled" and isinstance(embedder, SpanEmbedder):
            # One forward pass: each sentence's vector is pooled from its tokens inside a chunk.
            vectors = encode_pooled_parts(embedder, parts, size)
        else:
            chunk_vectors = embedder.encode([c.text for _, chunks, _ in parts for c in chunks], batch_size=size)
            # Sentences are short, so bigger batches cost no more padding.
            sentence_vectors = embedder.encode(
                [text[s.start : s.end] for text, _, spans in parts for s in spans], batch_size=size * 4
            )
            chunk_ends = np.cumsum([len(chunks) for _, chunks, _ in parts])[:-1]
            span_ends = np.cumsum([len(spans) for _, _, spans in parts])[:-1]
            vectors = list(zip(np.split(chunk_vectors, chunk_ends), np.split(sentence_vectors, span_ends), strict=True))
        return [
            (
                [NewPiece(c.start, c.end, v) for c, v in zip(chunks, chunk_vectors, strict=True)],
                [NewPiece(s.start, s.end, v) for s, v in zip(spans, sentence_vectors, strict=True)],
            )
            for (_, chunks, spans), (chunk_vectors, sentence_vectors) in zip(parts, vectors, strict=True)
        ]

    # --- in-memory indexes -------------------------------------------------------------------

    def _load(self, collection: str) -> object:
        """The embedded backend's in-memory indexes of a collection, loaded or reloaded (for benchmarks/chaos.py)."""
        return self.retrieval.load(collection)  # type: ignore[attr-defined]

    def _check_model(self, collection: str) -> int:
        """Raise if the collection was embedded by another model; return its version, read in the same look-up."""
        info = self.store.collection(collection)
        if info.model and info.model != self.embedder.name:
            raise ModelMismatchError(collection, info.model, self.embedder.name)
        return info.version

    # --- asking ------------------------------------------------------------------------------

    def ask(
        self,
        question: str,
        collection: str = "default",
        k: int = 3,
        *,
        articles: Sequence[int] | None = None,
        prefer: Sequence[int] | None = None,
    ) -> Answer:
        """Quote the passages of the collection's articles that best answer ``question``.

        ``articles`` limits the answer to those articles. ``prefer`` is for follow-up questions: the answer comes
        from those articles if they answer it, else from the whole collection if it does (``Answer.widened``),
        else it is those articles' closest passages, as weak matches.
        """
        question = answer.normalize_question(question)
        if not question:
            raise EmptyQuestionError()
        if len(question) > MAX_QUESTION_CHARS:
            raise QuestionTooLongError(MAX_QUESTION_CHARS)
        if not self.store.has_articles(collection):
            raise EmptyCollectionError(collection)
        for article_id in articles or ():
            self.store.article(collection, article_id)  # another collection's article is not found here
        version = self._check_model(collection)
        k = max(1, min(k, MAX_EXCERPTS))
        query = functools.cache(functools.partial(self._embed_question, question))  # embedded once, when first needed
        if articles is not None:
            return self._answer(question, collection, k, query, tuple(dict.fromkeys(articles)), version=version)
        if prefer:
            found = self._answer(question, collection, k, query, tuple(dict.fromkeys(prefer)), version=version)
            if found.answered:
                return found
            wider = self._answer(question, collection, k, query, None, version=version)
            if wider.answered or not found.results:
                return dataclasses.replace(wider, widened=True)
            return found  # nothing answers anywhere: the closest passages of the same story say the most
        return self._answer(question, collection, k, query, None, version=version)

    def _embed_question(self, question: str) -> np.ndarray:
        return self.embedder.encode([question])[0]

    def _core_to_spare(self) -> bool:
        """Whether a core and the interpreter are idle while the model embeds a question. On onnx-int8 (one core a
        text, in one call that lets go of the interpreter) reading meanwhile made an ask 0.4 ms faster (of 5); on
        torch (one core a text, Python between its operations) 1.5 ms slower (of 17)."""
        if self._spare is None:
            per_text = getattr(self.embedder, "cores_per_text", None)
            busy = getattr(self.embedder, "holds_interpreter", False)
            self._spare = per_text is not None and per_text < usable_cores() and not busy
        return self._spare

    def _read(self, collection: str, embedded: threading.Event, by_words: list[int]) -> Passages:
        """Read the best chunks by words while the question is embedded: most of the chunks read for the answer are
        among them (XQuAD, 10k chunks: 4.4 of 8 among the first 8, 6.3 among the first 16). Then judge their
        sentences, best chunk first, into the caches that choosing excerpts reads, until the question's vector is
        there: the answer judges what it still needs itself, and never waits for sentences it may not need."""
        try:
            passages = self.store.passages(collection, by_words[:READ_EARLY])
        except Exception:  # a guess at what the answer reads: the answer's own read meets any trouble again, or not
            log.debug("Reading ahead failed; the answer reads its passages itself", exc_info=True)
            return Passages({}, {}, {})
        for chunk_id in by_words[:READ_EARLY]:
            if embedded.is_set():
                break
            row = passages.chunks.get(chunk_id)
            if row is not None:
                for sentence in passages.sentences[chunk_id]:
                    _judged(passages.articles[row.article_id][1], sentence)
        return passages

    def _answer(
        self,
        question: str,
        collection: str,
        k: int,
        query: Callable[[], np.ndarray],
        scope: tuple[int, ...] | None,
        *,
        version: int,
    ) -> Answer:
        """Answer from the collection as it was at ``version``, or later: what is read ahead is kept only if the
        version has not moved since."""
        query_tokens = tokenize(question)
        embedded = threading.Event()
        read = functools.partial(self._read, collection, embedded) if self._core_to_spare() else None

        def vector() -> np.ndarray:
            try:
                return query()
            finally:
                embedded.set()

        ranked = self.retrieval.search(collection, vector, query_tokens, scope, read)
        fused = fuse([ranked.dense, ranked.lexical])[: max(CHUNKS_TO_READ, k * 2)]
        early = ranked.early or Passages({}, {}, {})
        if early.chunks and self.store.collection(collection).version != version:
            early = Passages({}, {}, {})  # written meanwhile (an article removed?): what is quoted is read afresh
        passages = early | self.store.passages(collection, [cid for cid, _ in fused if cid not in early.chunks])
        groups = self._sentences(passages, fused, query())
        found = answer.candidates(groups, query_tokens, ranked.idf, self.weights, text=question)
        chosen = answer.pick(found, k)
        threshold = self.settings.min_relevance
        answered = bool(chosen) and chosen[0].relevance >= threshold
        results = [
            self._excerpt(c, *passages.articles[c.article_id], query_tokens, not answered or c.relevance < threshold)
            for c in chosen
        ]
        return Answer(question, collection, answered, results, scope=scope)

    @staticmethod
    def _sentences(
        passages: Passages, fused: list[tuple[int, float]], query: np.ndarray
    ) -> list[answer.ArticleSentences]:
        """Gather the sentences of the retrieved chunks, by article, with their cosine to the question and traits."""
        top = fused[0][1] if fused else 1.0
        groups: dict[int, answer.ArticleSentences] = {}
        known: dict[int, answer.Sentence] = {}  # by sentence id: chunks overlap
        for chunk_id, score in fused:
            row = passages.chunks.get(chunk_id)
            if row is None:  # a vector whose chunk or article is gone: never quote it
                continue
            group = groups.get(row.article_id)
            if group is None:
                group = groups[row.article_id] = answer.ArticleSentences(
                    row.article_id, passages.articles[row.article_id][1], []
                )
            text = group.text
            prior = score / top
            for s in passages.sentences[chunk_id]:
                seen = known.get(s.id)
                if seen is not None:
                    seen.prior = max(seen.prior, prior)
                    continue
                tokens, traits = _judged(text, s)
                sentence = answer.Sentence(s.id, s.start, s.end, float(s.vector @ query), tokens, prior, traits)
                group.sentences.append(sentence)
                known[s.id] = sentence
        for group in groups.values():
            group.sentences.sort(key=lambda s: s.start)
        return list(groups.values())

    def _excerpt(
        self, cand: answer.Candidate, article: Article, text: str, query_tokens: list[str], weak: bool
    ) -> Excerpt:
        start, end = answer.trim(text, cand.start, cand.end, query_tokens, self.weights.max_chars)
        focus_start, focus_end = max(cand.focus_start, start), min(cand.focus_end, end)
        return Excerpt(
            text=text[start:end],
            start=start,
            end=end,
            article_id=article.id,
            title=article.title,
            url=article.url,
            score=round(cand.score, 4),
            relevance=round(cand.relevance, 4),
            focus_start=focus_start,
            focus_end=max(focus_start, focus_end),
            article_chars=article.chars,
            published=article.published,
            weak=weak,
        )

    # --- managing ----------------------------------------------------------------------------

    def article_count(self, collection: str = "default") -> int:
        return self.store.counts(collection)[0]

    def articles(self, collection: str = "default", limit: int | None = None, offset: int = 0) -> list[Article]:
        return self.store.articles(collection, limit=limit, offset=offset)

    def article(self, article_id: int, collection: str = "default") -> Article:
        return self.store.article(collection, article_id)

    def article_text(self, article_id: int, collection: str = "default") -> str:
        """The stored (cleaned) text of an article: every quote is a slice of it."""
        self.store.article(collection, article_id)  # another collection's article is not found here
        return self.store.article_text(article_id)

    def find_articles(self, needle: str, collection: str = "default", limit: int = 25) -> list[Article]:
        return self.store.search_titles(collection, needle, limit)

    def remove(self, article_id: int, collection: str = "default") -> Article:
        """Remove an article; its vectors leave the index at once."""
        # A missing id fails before any index is loaded; a damaged article can still be removed.
        self.store.article(collection, article_id, check=False)
        with self._lock:
            before = self.retrieval.before_write(collection)
            article, chunk_ids = self.store.remove_article(collection, article_id)
            self.retrieval.after_write(collection, before, removed=chunk_ids)
        return article

    def rebuild(self, collection: str = "default", progress: Progress | None = None) -> RebuildResult:
        """Re-split and re-embed every article of a collection from the text in SQLite.

        Chunks are cut anew, so a new model or a new chunk size takes full effect. Questions keep being
        answered from the old index until the new one is swapped in, in one transaction.
        """
        began = time.perf_counter()
        plans = [(article_id, text, *self._split(text)) for article_id, text in self.store.article_texts(collection)]
        total = sum(len(chunks) for _, _, chunks, _ in plans)
        done = 0
        if progress:
            progress(0, total)
        pieces: dict[int, Pieces] = {article_id: ([], []) for article_id, *_ in plans}
        # In slices of four batches, so that progress moves during a long article too, not only between articles.
        # Short articles go to the model together, four batches' worth at least: one article's few chunks leave a
        # core idle at its end (XQuAD's articles, 5 chunks each, on onnx-int8, the model alone: 2.75 s article by
        # article against 2.28 s all at once; rebuilt in groups of 64 chunks, 2.80-2.89 s against 2.93-3.45 s in
        # groups of 16).
        for group in _groups(plans, TOGETHER * max(1, self.settings.batch_size)):
            embedded = self._embed_parts([(text, chunks, spans) for _, text, chunks, spans in group])
            for (article_id, _, chunks, _), (new_chunks, new_sentences) in zip(group, embedded, strict=True):
                pieces[article_id][0].extend(new_chunks)
                pieces[article_id][1].extend(new_sentences)
                done += len(chunks)
            if progress:
                progress(done, total)
        with self._lock:
            self.store.replace_pieces(collection, pieces, self.embedder.name, self.embedder.dimension)
            self.retrieval.reset(collection)
        return RebuildResult(collection, len(plans), total, time.perf_counter() - began)

    def stats(self, collection: str = "default") -> Stats:
        articles, chunks, sentences = self.store.counts(collection)
        info = self.store.collection(collection)
        votes = self.feedback(collection)
        return Stats(
            collection=collection,
            articles=articles,
            chunks=chunks,
            sentences=sentences,
            model=info.model or self.settings.model,
            dimension=info.dimension or 0,
            index_bytes=self.retrieval.index_bytes(collection),
            database_bytes=self.store.size_bytes(),
            stored_bytes=self.store.collection_bytes(collection),
            votes_up=votes.up,
            votes_down=votes.down,
        )

    # --- answers and votes -------------------------------------------------------------------

    def record_answer(self, shown: Answer, *, asked_by: str | None = None, parent_id: int | None = None) -> int:
        """Keep what an answer quoted, so that follow-ups, "More" and votes can refer to it; return its id."""
        return self.store.add_answer(
            shown.collection,
            shown.question,
            shown.answered,
            shown.scope,
            quotes_of(shown),
            parent_id=parent_id,
            asked_by=asked_by,
        )

    def note_messages(self, answer_id: int, channel_id: str, message_ids: Sequence[str]) -> None:
        """Remember the messages an answer was shown in (a reply to any of them is a follow-up)."""
        self.store.add_answer_messages(answer_id, channel_id, message_ids)

    def answer_record(self, answer_id: int, collection: str) -> AnswerRecord:
        record = self.store.answer(answer_id)
        if record is None or record.collection != collection:
            raise AnswerNotFoundError(answer_id)
        return record

    def answer_for_message(self, message_id: str) -> AnswerRecord | None:
        return self.store.answer_for_message(message_id)

    def answer_in_thread(self, thread_id: str) -> AnswerRecord | None:
        """The latest answer in a thread that was started on an answer (a thread's id is its first message's)."""
        starter = self.store.answer_for_message(thread_id)
        if starter is None:
            return None
        return self.store.latest_answer_in(thread_id) or starter

    def follow_up(self, question: str, previous: AnswerRecord, k: int = 3) -> Answer:
        """Answer a follow-up from the articles the previous answer quoted, else from the whole collection."""
        return self.ask(question, previous.collection, k, prefer=previous.article_ids or None)

    def more(self, answer_id: int, collection: str, k: int = 3) -> Answer:
        """The next ``k`` excerpts for an answer's question: the best ones not shown by it or the ones it continues."""
        record = self.answer_record(answer_id, collection)
        seen: list[Quote] = []
        link: AnswerRecord | None = record
        while link is not None:
            seen.extend(link.quotes)
            link = self.store.answer(link.parent_id) if link.parent_id is not None else None
        wider = self.ask(record.question, collection, len(seen) + k, articles=record.scope)
        results = [wider.results[n] for n in unseen(wider, seen)][:k]
        answered = wider.answered and bool(results)  # the question is answered; weak excerpts say so themselves
        return dataclasses.replace(wider, answered=answered, results=results)

    def vote(self, answer_id: int, collection: str, voter: str, up: bool) -> Votes:
        """Record ``voter``'s 👍 or 👎 on an answer (replacing their earlier vote); return the answer's votes."""
        self.answer_record(answer_id, collection)
        self.store.set_vote(answer_id, voter, 1 if up else -1)
        return self.store.votes(answer_id)

    def votes(self, answer_id: int) -> Votes:
        return self.store.votes(answer_id)

    def feedback(self, collection: str, days: int = FEEDBACK_DAYS) -> Votes:
        """The votes on a collection's answers over the last ``days`` days."""
        since = (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="seconds")
        return self.store.votes_since(collection, since)

    def export_feedback(self, collection: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """The upvoted answers and the downvoted ones, each as a SQuAD v1.1 document (ties are left out)."""

        def article(name: str, article_id: int) -> tuple[Article, str] | None:
            try:
                found = self.store.article(name, article_id)
            except ArticleNotFoundError:  # removed since: nothing to quote from
                return None
            return found, self.store.article_text(article_id)

        voted = self.store.voted_answers(collection)
        return (
            feedback.squad([(r, v) for r, v in voted if v.up > v.down], article),
            feedback.squad([(r, v) for r, v in voted if v.down > v.up], article),
        )

    def watch(self, collection: str, channel_id: str, on: bool, added_by: str | None = None) -> None:
        """Add the links posted in a channel by themselves (``on``), or stop."""
        self.store.set_watch(channel_id, collection, on, added_by)

    def watched_channels(self, collection: str | None = None) -> dict[str, str]:
        """Channel id -> collection of the watched channels."""
        return self.store.watched_channels(collection)

    # --- feeds -------------------------------------------------------------------------------

    def add_feed(
        self, url: str, collection: str = "default", added_by: str | None = None, notify: str | None = None
    ) -> FeedAdded:
        """Follow an RSS or Atom feed: it is read once now, and its articles arrive with the polls."""
        return self.feed_poller.add(url, collection, added_by=added_by, notify=notify)

    def feeds(self, collection: str = "default") -> list[Feed]:
        return self.store.feeds(collection)

    def feed(self, feed_id: int, collection: str = "default") -> Feed:
        return self.store.feed(collection, feed_id)

    def remove_feed(self, feed_id: int, collection: str = "default") -> Feed:
        """Stop following a feed; the articles it brought stay, and its entries stay seen."""
        return self.store.remove_feed(collection, feed_id)

    def poll_feed(
        self,
        feed_id: int,
        collection: str = "default",
        minutes: float = DEFAULT_POLL_MINUTES,
        stop: Callable[[], bool] | None = None,
    ) -> FeedPoll:
        """Poll one feed now: add its new entries' articles (up to the per-poll limit) and schedule the next poll."""
        return self.feed_poller.poll(self.store.feed(collection, feed_id), minutes, stop=stop)

    def poll_feeds(self, collection: str = "default", minutes: float = DEFAULT_POLL_MINUTES) -> list[FeedPoll]:
        """Poll every feed of a collection now, whatever their schedule."""
        return [self.feed_poller.poll(feed, minutes) for feed in self.store.feeds(collection)]

    def due_feeds(self, collections: set[str] | None = None) -> list[Feed]:
        """Feeds whose next poll is due, of ``collections`` (default: all), the longest overdue first."""
        return self.feed_poller.due(collections)


def _judged(text: str, s: SentenceRow) -> tuple[frozenset[str], answer.Traits]:
    """A sentence's words and traits, whatever the question (both cached: the same sentences come up again)."""
    return (
        token_set(text[s.start : s.end]),
        answer.traits(
            text[s.start : s.end],
            line_start=s.start == 0 or text[s.start - 1] == "\n",
            line_end=s.end == len(text) or text[s.end] == "\n",
            first=s.start == 0 and s.end < len(text),
        ),
    )


def _groups(plans: Sequence[ArticlePlan], size: int) -> Iterator[list[ArticlePlan]]:
    """The articles' chunks in slices of at most ``size`` (with their sentences), gathered in order into groups of
    at least ``size`` chunks (the last may hold fewer)."""
    gathered: list[ArticlePlan] = []
    held = 0
    for article_id, text, chunks, spans in plans:
        for some_chunks, some_spans in _slices(chunks, spans, size):
            gathered.append((article_id, text, some_chunks, some_spans))
            held += len(some_chunks)
            if held >= size:
                yield gathered
                gathered, held = [], 0
    if gathered:
        yield gathered


def _slices(chunks: Sequence[Chunk], spans: Sequence[Span], size: int) -> Iterator[tuple[list[Chunk], list[Span]]]:
    """Cut an article's chunks into runs of ``size``, each with the sentences that lie inside its chunks."""
    size = max(1, size)
    taken = 0
    for first in range(0, len(chunks), size):
        some = list(chunks[first : first + size])
        last = first + size >= len(chunks)
        end = some[-1].end
        mine = [s for s in spans[taken:] if last or s.end <= end]
        taken += len(mine)
        yield some, mine
