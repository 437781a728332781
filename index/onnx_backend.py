"""The embedding model on ONNX Runtime: exported once from the sentence-transformers model, then run without torch.

The export lives beside the data, in ``<data_dir>/models/<model>/``: ``model.onnx`` (the transformer, returning
its token vectors), ``tokenizer.json``, ``export.json`` (what pooling needs), and, on first use of the int8
backend, its int8 copy (``INT8_NAME``). Making it loads torch once; reading it never does.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from index.embedding import FairLock, Lanes, SpanList, pool_encoded, resolve_model_path, stacked, usable_cores
from index.errors import ModelLoadError

EXPORT_FORMAT = 1
OPSET = 17
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# The int8 copy's name carries its recipe: a copy made by an older one is made again.
INT8_NAME = "model.int8.v2.onnx"
# The feed-forward output projection of the first layer stays in float: its input (after GELU) has the widest
# range of any, and per-tensor int8 lost the most there. On XQuAD, excerpt hit@1 with pooled sentence vectors:
# all int8 86.5%, this one in float 86.8%, the first two 87.1% (torch 87.1%); engine ingest against the torch
# floor, interleaved, medians of 5 runs: 1.70x, 1.63x, 1.56x. Mean cosine to torch on the chunks: 0.9944,
# 0.9955, 0.9961.
FLOAT_LAYERS = 1
_FEED_FORWARD_OUT = re.compile(r"layer\.(\d+)/output/dense/MatMul$")

T = TypeVar("T")


def export_dir(models_dir: Path, model: str) -> Path:
    """Where the export of ``model`` lives (one folder per model name)."""
    return models_dir / re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("._")


def ensure_export(model: str, models_dir: Path, quantized: bool = False) -> Path:
    """Return the folder holding the ONNX export of ``model``, exporting it first if needed (this loads torch)."""
    folder = export_dir(models_dir, model)
    if not _export_is_current(folder, model):
        _export(model, folder)
    if quantized and not (folder / INT8_NAME).exists():
        _quantize(folder / "model.onnx", folder / INT8_NAME)
        for stale in folder.glob("model.int8*.onnx"):
            if stale.name != INT8_NAME:
                stale.unlink(missing_ok=True)
    return folder


def _export_is_current(folder: Path, model: str) -> bool:
    try:
        meta = json.loads((folder / "export.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        meta.get("format") == EXPORT_FORMAT
        and meta.get("model") == model
        and meta.get("source") == _fingerprint(model)
        and (folder / "model.onnx").exists()
    )


def _fingerprint(model: str) -> list[Any]:
    """The model's files by name, size and date when it is a local folder (a reinstalled model is exported again)."""
    path = Path(resolve_model_path(model))
    if not path.is_dir():
        return [model]
    return sorted(
        [str(f.relative_to(path)), f.stat().st_size, f.stat().st_mtime_ns] for f in path.rglob("*") if f.is_file()
    )


def _pooling(module: Any) -> str:
    mode = getattr(module, "pooling_mode", None)  # sentence-transformers 5 and later
    if mode is None and hasattr(module, "get_pooling_mode_str"):
        mode = module.get_pooling_mode_str()
    return str(mode)


def _export(model: str, folder: Path) -> None:
    """Export the transformer of a mean-pooling sentence-transformers model, and its tokenizer, into ``folder``.

    Everything is written to a scratch folder beside it and renamed into place, so a crash or a concurrent export
    never leaves a half-written model behind.
    """
    from index.embedding import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder(model, "cpu")
    st = embedder.model
    modules = [type(m).__name__ for m in st]
    if modules[:2] != ["Transformer", "Pooling"] or modules[2:] not in ([], ["Normalize"]) or _pooling(st[1]) != "mean":
        raise ModelLoadError(model, f"the onnx backend runs mean-pooled models only, not {' + '.join(modules)}")
    import torch

    transformer = st[0].auto_model.eval()
    if hasattr(transformer, "set_attn_implementation"):
        transformer.set_attn_implementation("eager")  # traces to plain ops that every runtime has

    class TokenVectors(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    scratch.chmod(0o755)  # mkdtemp's 0700 would hide the export from another user running the same data
    try:
        sample = torch.ones((2, 8), dtype=torch.long)
        axes = {"batch": 0, "tokens": 1}
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                TokenVectors(),
                (sample, sample, torch.zeros_like(sample)),
                str(scratch / "model.onnx"),
                input_names=list(INPUTS),
                output_names=["token_embeddings"],
                dynamic_axes={name: {v: k for k, v in axes.items()} for name in [*INPUTS, "token_embeddings"]},
                opset_version=OPSET,
                dynamo=False,
            )
        st.tokenizer.backend_tokenizer.save(str(scratch / "tokenizer.json"))
        meta = {
            "format": EXPORT_FORMAT,
            "model": model,
            "source": _fingerprint(model),
            "dimension": embedder.dimension,
            "max_seq_length": embedder.max_tokens + 2,
            "do_lower_case": bool(getattr(st[0], "do_lower_case", False)),
        }
        (scratch / "export.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        for path in scratch.iterdir():
            _fsync(path)
        if folder.exists():  # an older export: set it aside, then swap
            stale = Path(tempfile.mkdtemp(prefix=f".{folder.name}-stale-", dir=folder.parent))
            os.replace(folder, stale / "old")
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(scratch, folder)
        except OSError:
            if not _export_is_current(folder, model):  # another process's export did not win either
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _quantize(source: Path, target: Path) -> None:
    """Write an int8 copy of ``source`` (weights quantized ahead, activations at run time) atomically."""
    # onnxruntime.quantization calls logging.basicConfig(level=INFO) on import and logs a notice through the root
    # logger, which would install a handler and flood the CLI with every library's messages: put them back after.
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    handle, scratch = tempfile.mkstemp(prefix=f".{target.name}-", suffix=".onnx", dir=target.parent)
    os.close(handle)
    Path(scratch).chmod(0o644)
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            root.setLevel(logging.ERROR)
            quantize_dynamic(
                source, scratch, weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=_kept_in_float(source)
            )
        _fsync(Path(scratch))
        os.replace(scratch, target)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        Path(scratch).unlink(missing_ok=True)


def _kept_in_float(source: Path) -> list[str]:
    """The MatMul nodes that stay float in the int8 copy (none in a model whose nodes are named otherwise)."""
    import onnx

    kept = []
    for node in onnx.load(str(source), load_external_data=False).graph.node:
        found = _FEED_FORWARD_OUT.search(node.name) if node.op_type == "MatMul" else None
        if found and int(found.group(1)) < FLOAT_LAYERS:
            kept.append(node.name)
    return kept


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


class OnnxEmbedder:
    """A sentence-transformers model's ONNX export on ONNX Runtime, with the ``tokenizers`` library: no torch.

    Every text runs on its own (no padding) on one core, and the texts of one call run on all cores at once. On
    this 2-core machine that embedded XQuAD's chunks at 2.7x the torch floor with the int8 model, against 1.6x in
    length-sorted batches of 16 on a two-thread session: a session's threads that do not spin wait to be woken
    for each of the model's ~200 operations, and padding is work for nothing.
    """

    def __init__(self, model: str, models_dir: Path, quantized: bool = False, threads: int | None = None) -> None:
        try:
            folder = ensure_export(model, models_dir, quantized)
            meta = json.loads((folder / "export.json").read_text(encoding="utf-8"))
            import onnxruntime as ort
            from tokenizers import Tokenizer

            options = ort.SessionOptions()
            options.intra_op_num_threads = 1  # one run, one core: the parallelism is across texts
            options.inter_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.add_session_config_entry("session.inter_op.allow_spinning", "0")
            options.log_severity_level = 3
            weights = folder / (INT8_NAME if quantized else "model.onnx")
            self._session = ort.InferenceSession(str(weights), options, providers=["CPUExecutionProvider"])
            self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except ModelLoadError:
            raise
        except Exception as exc:  # the libraries raise many kinds; the user needs one line
            raise ModelLoadError(model, f"{type(exc).__name__}: {exc}".splitlines()[0]) from exc
        self.name = model
        self.dimension = int(meta["dimension"])
        self._max_length = int(meta["max_seq_length"])
        self.max_tokens = self._max_length - 2
        self._lower = bool(meta["do_lower_case"])
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(self._max_length)
        self._wanted = {i.name for i in self._session.get_inputs()}
        self.threads = max(1, threads or usable_cores())
        self.cores_per_text = 1
        # One slot per core, handed out in turn: a question waits for one text's run, not for an article.
        self._slots = FairLock(self.threads)
        # The texts of a call run on workers that stay: a thread pool made per call spent 2.7% of an add starting.
        self._lanes = Lanes(self.threads, "onnx-run")

    def encode(self, texts: Sequence[str], batch_size: int = 16) -> np.ndarray:
        """``batch_size`` is not used: each text runs alone."""
        return stacked(self._run_all(texts, lambda row, tokens, encoding: self._pool(tokens)), self.dimension)

    def encode_spans(
        self, texts: Sequence[str], spans: Sequence[SpanList], batch_size: int = 16
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        def pool(row: int, tokens: np.ndarray, encoding: Any) -> tuple[np.ndarray, np.ndarray]:
            return self._pool(tokens), pool_encoded(tokens, encoding, spans[row])

        pooled = self._run_all(texts, pool)
        return stacked([vector for vector, _ in pooled], self.dimension), [sentences for _, sentences in pooled]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        # What truncation cuts off is kept as overflowing pieces (no stride): counting them too gives the full length
        # without a second, untruncated tokenizer (each one costs ~0.1 s of start-up).
        encodings = self._tokenizer.encode_batch(self._prepare(texts), add_special_tokens=False)
        return [len(e.ids) + sum(len(o.ids) for o in e.overflowing) for e in encodings]

    def _prepare(self, texts: Sequence[str]) -> list[str]:
        return [t.lower() for t in texts] if self._lower else list(texts)

    def _run_all(self, texts: Sequence[str], finish: Callable[[int, np.ndarray, Any], T]) -> list[T]:
        """``finish(row, token vectors, encoding)`` of each text, in order. The runs, and what ``finish`` makes of
        them, spread over ``threads`` cores, longest text first so that the last to finish are short."""
        encodings = self._tokenizer.encode_batch(self._prepare(texts)) if texts else []

        def one(row: int) -> T:
            return finish(row, self._run(encodings[row]), encodings[row])

        if len(encodings) <= 1 or self.threads == 1:  # on the caller's thread: no hand-off for a question
            return [one(row) for row in range(len(encodings))]
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids), reverse=True)
        return self._lanes.map(one, order)

    def _run(self, encoding: Any) -> np.ndarray:
        """One text's token vectors, ``(tokens, dimension)``."""
        feed = {
            "input_ids": np.asarray([encoding.ids], dtype=np.int64),
            "attention_mask": np.asarray([encoding.attention_mask], dtype=np.int64),
            "token_type_ids": np.asarray([encoding.type_ids], dtype=np.int64),
        }
        with self._slots:
            (tokens,) = self._session.run(None, {k: v for k, v in feed.items() if k in self._wanted})
        return np.asarray(tokens[0], dtype=np.float32)

    @staticmethod
    def _pool(tokens: np.ndarray) -> np.ndarray:
        """Mean of the text's token vectors, then L2-normalized, as the model's Pooling (and the engine) do."""
        means = tokens.mean(axis=0)
        return (means / max(float(np.linalg.norm(means)), 1e-12)).astype(np.float32)
