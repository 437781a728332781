"""Add a 50-page article through the bot while questions keep arriving; report loop stalls and acknowledgements.

    python -m benchmarks.big_add SQUAD.json [--formats txt md html] [--rate 2] [--rebuild] [--trace-stalls 0.05]

The real bot (``NewsQuoteBot``, real discord.py client, default settings) runs on the real engine and packaged model
against ``tests/fakes/discord_server.py`` in this process. Two servers start with a few articles of a SQuAD v1.1 file
(e.g. XQuAD's ``xquad.en.json``); the file's other articles, joined as the sections of one long report (about
26,000 words, 50 pages), are uploaded to the first server with ``/add file`` as a ``.txt``, a ``.md`` and an
``.html`` file in turn (a fresh data directory each). From a second before the upload until its reply, ``--rate``
questions a second arrive from members of both servers (each member asks less often than the ask cooldown). With
``--rebuild`` the server owner then runs ``/rebuild`` (re-embedding the big article) while the questions go on.

A probe task sleeps 10 ms at a time on the event loop (shared by the bot and the fake) and records how late it
wakes: the largest lateness is the longest any Discord event waited. Each interaction's acknowledgement time is
from the moment the fake sent it to the bot's first response. Before each upload a floor phase of questions alone
(``--floor-seconds``) gives what the machine and the questions cost the loop without the big article. Targets:
largest stall < 100 ms, every interaction acknowledged < 500 ms, no errors. ``--trace-stalls SECONDS`` prints
every thread's stack when the loop stalls longer (faulthandler's watchdog runs without the GIL, so it shows the
thread that holds it; a diagnostic only, it can crash the process).
"""

from __future__ import annotations

import argparse
import asyncio
import html
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.load_bot import (
    CollectorPauses,
    Command,
    ErrorRecords,
    LoopProbe,
    Server,
    _percentile,
    build_world,
    finished,
    load_articles,
    running_bot,
    seed,
    settle,
)
from index import Engine, Settings
from index.embedding import Embedder

ACK_TARGET = 0.5
STALL_TARGET = 0.1
PHASE_DEADLINE = 900.0
CONTENT_TYPES = {"txt": "text/plain", "md": "text/markdown", "html": "text/html"}


def report_file(sections: list[tuple[str, str]], kind: str) -> bytes:
    """One long report made of ``sections`` (title, paragraphs separated by blank lines), as a .txt, .md or .html."""
    title = "Reference digest: " + ", ".join(t for t, _ in sections[:3]) + " and more"
    if kind == "html":
        body = "".join(
            f"<h2>{html.escape(t)}</h2>\n" + "".join(f"<p>{html.escape(p)}</p>\n" for p in text.split("\n\n"))
            for t, text in sections
        )
        page = (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body><nav><a href='/'>Home</a> | <a href='/news'>News</a></nav><article><h1>{html.escape(title)}</h1>"
            f"\n{body}</article><footer>Copyright the Digest</footer></body></html>"
        )
        return page.encode()
    heading, sub = ("# ", "## ") if kind == "md" else ("", "")
    return (f"{heading}{title}\n\n" + "".join(f"{sub}{t}\n\n{text}\n\n" for t, text in sections)).encode()


@dataclass
class Phase:
    """What one phase (an upload or a rebuild, with questions all along) measured."""

    name: str
    probe: LoopProbe
    commands: list[Command]
    errors: int
    seconds: float = 0.0
    collections: str = ""
    notes: list[str] = field(default_factory=list)


class Asker:
    """Send ``rate`` questions a second, round-robin over the members, until stopped."""

    def __init__(self, fake: Any, servers: list[Server], rate: float) -> None:
        self.fake, self.rate = fake, rate
        self.users = [(s, u) for s in servers for u in s.members]
        self.sent: list[Command] = []
        self.turn = 0

    async def run(self) -> None:
        tasks: set[asyncio.Task[Any]] = set()
        try:
            while True:
                server, user = self.users[self.turn % len(self.users)]
                question = server.questions[(self.turn * 7919) % len(server.questions)]
                self.turn += 1
                task = asyncio.create_task(self._ask(server, user, question))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                await asyncio.sleep(1 / self.rate)
        finally:
            for task in tasks:
                with suppress(asyncio.CancelledError):
                    await task

    async def _ask(self, server: Server, user: dict[str, Any], question: str) -> None:
        options = {"question": question}
        sent = await self.fake.send_interaction("ask", options, user_id=user["id"], channel_id=server.channel_id)
        self.sent.append(Command("ask", sent))


async def phase(name: str, fake: Any, asker: Asker, args: argparse.Namespace, send: Callable[[], Any] | None) -> Phase:
    """Ask questions from a second before ``send()`` until its command (and every question) has its final reply.

    Without ``send``, only ask for ``args.floor_seconds``: the floor, what questions alone (and the machine's other
    processes) cost the event loop, measured in the same run.
    """
    errors = ErrorRecords()
    logging.getLogger().addHandler(errors)
    known_errors = len(fake.errors) + len(fake.unknown)
    probe = LoopProbe(trace_after=args.trace_stalls)
    probing = asyncio.create_task(probe.run())
    collector = CollectorPauses().start()
    asker.sent = []
    asking = asyncio.create_task(asker.run())
    await asyncio.sleep(1.0)
    began = time.perf_counter()
    if send is None:
        await asyncio.sleep(args.floor_seconds)
        commands = []
    else:
        main = Command(name, await send())
        with suppress(TimeoutError):
            await fake.wait_until(lambda: finished(main), timeout=PHASE_DEADLINE)
        commands = [main]
    seconds = time.perf_counter() - began
    await asyncio.sleep(1.0)  # questions asked as the work ends
    asking.cancel()
    with suppress(asyncio.CancelledError):
        await asking
    commands += asker.sent
    with suppress(TimeoutError):
        await fake.wait_until(lambda: all(finished(c) for c in commands), timeout=60)
    probing.cancel()
    with suppress(asyncio.CancelledError):
        await probing
    collector.stop()
    logging.getLogger().removeHandler(errors)
    settle(fake, commands)
    failed = [c for c in commands if c.done_at is None or c.outcome]
    result = Phase(name, probe, commands, len(failed) + len(errors.records), seconds, collector.describe())
    result.errors += len(fake.errors) + len(fake.unknown) - known_errors
    result.notes += [f"/{c.kind}: {c.outcome or 'no reply'}" for c in failed[:5]]
    result.notes += [f"log: {r.name}: {r.getMessage()}" for r in errors.records[:5]]
    return result


async def run_format(args: argparse.Namespace, embedder: Embedder, kind: str) -> list[Phase]:
    """A fresh data directory and bot: the floor, then the upload of the big article as ``kind``, then the rebuild."""
    articles = load_articles(args.squad)
    starting = args.servers * args.articles_per_server
    sections = [(title, text) for title, text, _ in articles[starting:]]
    data = report_file(sections, kind)
    words = sum(len(text.split()) for _, text in sections)
    print(f"\n== .{kind}: {len(data):,} bytes, {words:,} words in {len(sections)} sections", flush=True)
    fake, servers = build_world(args.servers, args.users)
    with tempfile.TemporaryDirectory() as data_dir:
        engine = Engine(Settings(_env_file=None, data_dir=Path(data_dir)), embedder)  # type: ignore[call-arg]
        try:
            seed(engine, servers, articles[:starting])
            servers[0].questions.extend(q for _, _, qs in articles[starting:] for q in qs)
            async with fake, running_bot(engine, fake):
                uploader, home = servers[0].owner, servers[0].channel_id
                attachment = fake.add_attachment(f"digest.{kind}", data, CONTENT_TYPES[kind])
                asker = Asker(fake, servers, args.rate)  # one for all phases: each member keeps to its pace
                phases = [
                    await phase("floor", fake, asker, args, None),
                    await phase(
                        f"add .{kind}",
                        fake,
                        asker,
                        args,
                        lambda: fake.send_interaction(
                            "add file", {"attachment": attachment}, user_id=uploader["id"], channel_id=home
                        ),
                    ),
                ]
                if args.rebuild and kind == args.formats[-1]:
                    phases.append(
                        await phase(
                            "rebuild",
                            fake,
                            asker,
                            args,
                            lambda: fake.send_interaction("rebuild", {}, user_id=uploader["id"], channel_id=home),
                        )
                    )
        finally:
            engine.close()
    for p in phases:
        show(p)
    return phases


def show(p: Phase) -> None:
    acks = [c.ack_seconds for c in p.commands if c.ack_seconds is not None]
    answers = [c.seconds for c in p.commands if c.kind == "ask" and c.seconds is not None and not c.outcome]
    unacked = sum(c.ack_seconds is None for c in p.commands)
    worst, p99 = max(p.probe.lags) * 1000, _percentile(p.probe.lags, 0.99) * 1000
    questions = sum(c.kind == "ask" for c in p.commands)
    print(f"-- {p.name}: {p.seconds:.1f} s, {questions} questions meanwhile, errors {p.errors}")
    for note in p.notes:
        print(f"   {note}")
    print(
        f"   largest event-loop stall {worst:.0f} ms (p99 {p99:.0f} ms, {sum(x >= STALL_TARGET for x in p.probe.lags)} "
        f"stalls >= {STALL_TARGET * 1000:.0f} ms); target < {STALL_TARGET * 1000:.0f} ms: "
        f"{'met' if worst < STALL_TARGET * 1000 else 'NOT met'}"
    )
    print(
        f"   interaction to first response: max {max(acks) * 1000:.0f} ms, "
        f"p99 {_percentile(acks, 0.99) * 1000:.0f} ms, "
        f"{unacked} never; target < {ACK_TARGET * 1000:.0f} ms: "
        f"{'met' if not unacked and max(acks) < ACK_TARGET else 'NOT met'}"
    )
    _, starved = p.probe.starved(STALL_TARGET)
    print(
        f"   of the stalls >= {STALL_TARGET * 1000:.0f} ms, {starved} with this process under half a CPU "
        "(the machine's other processes stretched them)"
    )
    print(f"   garbage collection: {p.collections}")
    if answers:
        print(f"   /ask answered p50 / max {statistics.median(answers):.2f} / {max(answers):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.big_add", description=__doc__.split("\n\n")[0])
    parser.add_argument("squad", type=Path, help="a SQuAD v1.1 file, e.g. xquad.en.json")
    parser.add_argument("--formats", nargs="+", choices=sorted(CONTENT_TYPES), default=["txt", "md", "html"])
    parser.add_argument("--rate", type=float, default=2.0, help="questions a second while the work runs")
    parser.add_argument("--users", type=int, default=20, help="members asking, spread over the servers")
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--articles-per-server", type=int, default=4, help="articles each server starts with")
    parser.add_argument("--rebuild", action="store_true", help="after the last upload, /rebuild its server")
    parser.add_argument("--floor-seconds", type=float, default=15.0, help="questions alone, before each upload")
    parser.add_argument(
        "--trace-stalls",
        type=float,
        metavar="SECONDS",
        help="print every thread's stack when the loop stalls longer (a diagnostic: faulthandler reads the other "
        "threads' frames without the GIL and can crash the process)",
    )
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as data_dir:
        engine = Engine(Settings(_env_file=None, data_dir=Path(data_dir)))  # type: ignore[call-arg]
        print(f"Loading {engine.settings.model}...", flush=True)
        embedder = engine.embedder
        engine.close()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average {load} (other processes count too)")
    phases = [p for kind in args.formats for p in asyncio.run(run_format(args, embedder, kind))]
    print("\nsummary")
    for p in phases:
        acks = [c.ack_seconds for c in p.commands if c.ack_seconds is not None]
        print(
            f"  {p.name:<10} {p.seconds:6.1f} s   largest stall {max(p.probe.lags) * 1000:4.0f} ms   "
            f"slowest first response {max(acks) * 1000:4.0f} ms   errors {p.errors}"
        )


if __name__ == "__main__":
    main()
