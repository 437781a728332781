"""Cold ``python -m index ask`` to its first answer, and resident memory at 100k chunks, per backend.

    python -m benchmarks.cold_start SQUAD.json [--runs 5] [--backends torch onnx onnx-int8]
                                              [--memory-chunks 100000] [--cache DIR] [--json]

Start-up: a new ``python -m index ask`` process per run, on a collection of the file's articles, timed from the
spawn to the first line of its answer on stdout (the operating system's file cache is warm: this is a restart, not
a boot). Its floors, in the same run: a bare ``python -c pass``, and a process that only loads the backend's model
and embeds one question (sentence-transformers for torch; onnxruntime + tokenizers for the onnx exports).

Memory: the peak resident set (``VmHWM``, read by the process itself as it exits) of the same ``ask`` on a collection
of ``--memory-chunks`` chunks (the articles embedded for real, then copies with jittered vectors), and, as its
floor, on the small collection. (``ru_maxrss`` would count the benchmark's own memory, which the child has for an
instant between fork and exec.)
The onnx exports are made before anything is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._collection import build, load_squad
from index.embedding import load_embedder, resolve_model_path
from index.onnx_backend import INT8_NAME, export_dir
from index.settings import Settings

QUESTION = "What did the report say about the cost?"

TORCH_FLOOR = """
import sys
from sentence_transformers import SentenceTransformer
SentenceTransformer(sys.argv[1], device="cpu").encode([sys.argv[2]], normalize_embeddings=True)
print("ok", flush=True)
"""

ONNX_FLOOR = """
import sys
import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer
options = ort.SessionOptions()
options.add_session_config_entry("session.intra_op.allow_spinning", "0")
session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
encoding = Tokenizer.from_file(sys.argv[3]).encode(sys.argv[2])
ids = np.array([encoding.ids])
session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)})
print("ok", flush=True)
"""


# Runs ``python -m index ARGS`` and, as it exits, writes its peak resident set to stderr.
MEASURED_CLI = """
import atexit, runpy, sys
def peak():
    sys.stderr.write(next(line for line in open("/proc/self/status") if line.startswith("VmHWM")))
atexit.register(peak)
sys.argv[0] = "index"
runpy.run_module("index", run_name="__main__", alter_sys=True)
"""


def first_line_seconds(command: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Seconds from spawning ``command`` to its first line on stdout, and the peak resident set in kB it reported
    (0 if it did not)."""
    began = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    seconds = time.perf_counter() - began
    _, errors = process.communicate()
    if process.returncode != 0 or not line.strip():
        raise RuntimeError(f"{' '.join(command[:4])}... failed: {errors[-2000:]}")
    peaks = [int(row.split()[1]) for row in errors.splitlines() if row.startswith("VmHWM:")]
    return seconds, peaks[-1] if peaks else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cold_start", description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="a SQuAD v1.1 JSON file (e.g. xquad.en.json)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backends", nargs="+", default=["torch", "onnx", "onnx-int8"])
    parser.add_argument("--memory-chunks", type=int, default=100_000, help="0 skips the memory figure")
    parser.add_argument("--cache", type=Path, help="keep the collections and onnx exports here between runs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    articles, _ = load_squad(args.file)
    with tempfile.TemporaryDirectory() as scratch:
        root = args.cache or Path(scratch)
        small, large = root / "small", root / "large"
        base = Settings(_env_file=None, data_dir=small, sentence_vectors="pooled")  # type: ignore[call-arg]
        for backend in args.backends:  # the exports, made once, before any timing
            load_embedder(base.model_copy(update={"backend": backend}))
        embedder = load_embedder(base.model_copy(update={"backend": args.backends[-1]}))
        build(base, embedder, articles, 1, "default")
        large_chunks = 0
        if args.memory_chunks:
            large.mkdir(parents=True, exist_ok=True)
            if not (large / "models").exists():  # share the exports rather than make them again
                (large / "models").symlink_to((small / "models").resolve(), target_is_directory=True)
            large_chunks = build(
                base.model_copy(update={"data_dir": large}), embedder, articles, args.memory_chunks, "default"
            )

        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSQUOTE_")} | {"HF_HUB_OFFLINE": "1"}
        ask = [sys.executable, "-c", MEASURED_CLI, "ask", QUESTION, "--data-dir"]
        folder = export_dir(small / "models", base.model)
        floors = {
            "torch": [sys.executable, "-c", TORCH_FLOOR, resolve_model_path(base.model), QUESTION],
            "onnx": [
                sys.executable,
                "-c",
                ONNX_FLOOR,
                str(folder / "model.onnx"),
                QUESTION,
                str(folder / "tokenizer.json"),
            ],
            "onnx-int8": [
                sys.executable,
                "-c",
                ONNX_FLOOR,
                str(folder / INT8_NAME),
                QUESTION,
                str(folder / "tokenizer.json"),
            ],
        }
        times: dict[str, list[float]] = {}
        memory: dict[str, list[int]] = {}
        for _ in range(args.runs):
            times.setdefault("python -c pass", []).append(
                first_line_seconds([sys.executable, "-c", "print('ok')"], env)[0]
            )
            for backend in args.backends:
                backend_env = env | {"NEWSQUOTE_BACKEND": backend}
                seconds, rss = first_line_seconds([*ask, str(small)], backend_env)
                times.setdefault(f"{backend}: ask", []).append(seconds)
                memory.setdefault(f"{backend}: small collection", []).append(rss)
                times.setdefault(f"{backend}: load model + embed one question", []).append(
                    first_line_seconds(floors[backend], env)[0]
                )
        if large_chunks:
            for backend in args.backends:
                for _ in range(2):
                    _, rss = first_line_seconds([*ask, str(large)], env | {"NEWSQUOTE_BACKEND": backend})
                    memory.setdefault(f"{backend}: {large_chunks} chunks", []).append(rss)

    figures = {
        "runs": args.runs,
        "seconds_to_first_answer": {k: round(statistics.median(v), 3) for k, v in times.items()},
        "peak_rss_MB": {k: round(statistics.median(v) / 1024) for k, v in memory.items()},
        "chunks_for_memory": large_chunks,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"cold start, median of {args.runs} runs (warm file cache)")
    for name, seconds in figures["seconds_to_first_answer"].items():
        print(f"  {name:<44}{seconds:>7.2f} s")
    print("peak resident memory of `python -m index ask`")
    for name, megabytes in figures["peak_rss_MB"].items():
        print(f"  {name:<44}{megabytes:>7} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
