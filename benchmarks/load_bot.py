"""Load the bot through the fake Discord and report errors, acknowledgement delays, answer times and loop stalls.

    python -m benchmarks.load_bot SQUAD.json [--asks 200] [--users 50] [--servers 5] [--adds 20] [--seconds 30]

The real bot (``NewsQuoteBot``, real discord.py client, default settings, cooldowns included) runs on the real
engine and packaged model against ``tests/fakes/discord_server.py`` in this process. Articles and questions come
from a SQuAD v1.1 file (e.g. XQuAD's ``xquad.en.json``): each server starts with a few articles, then ``--asks``
questions arrive from ``--users`` members spread over ``--servers`` servers during ``--seconds`` seconds, while
``--adds`` more articles are uploaded with ``/add file`` and one ``/rebuild`` re-embeds the first server.

Each user's questions are spaced further apart than the ask cooldown, and each upload comes from a different
user, so every command should succeed: any refusal counts as an error. A probe task sleeps 10 ms at a time on the
event loop (shared by the bot and the fake) and records how late it wakes: the largest lateness is the longest
stall any Discord event could have suffered. Targets: 0 errors, 0 interactions acknowledged after 3 s, largest
stall < 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import gc
import json
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bot.checks import collection_for
from bot.client import NewsQuoteBot
from bot.settings import BotSettings
from index import Engine, Settings
from tests.fakes.discord_server import (
    EPHEMERAL,
    FakeDiscord,
    FakeInteraction,
    Payload,
    RecordedRequest,
    make_channel,
    make_guild,
    make_member,
    make_user,
)

ACK_LIMIT = 3.0  # Discord drops an interaction that is not acknowledged within 3 s
TOKEN = "load-token"
ANSWER_DEADLINE = 300.0  # after the last command is sent


@dataclass
class Server:
    guild: Payload
    owner: Payload
    members: list[Payload]
    questions: list[str] = field(default_factory=list)

    @property
    def channel_id(self) -> str:
        return str(self.guild["channels"][0]["id"])

    @property
    def collection(self) -> str:
        return collection_for(int(self.guild["id"]))


@dataclass
class Command:
    """One slash command sent, and what became of it."""

    kind: str  # ask, add or rebuild
    interaction: FakeInteraction
    done_at: float | None = None
    outcome: str = ""  # the reply, for errors

    @property
    def ack_seconds(self) -> float | None:
        acked = self.interaction.acked_at
        return None if acked is None else acked - self.interaction.sent_at

    @property
    def seconds(self) -> float | None:
        return None if self.done_at is None else self.done_at - self.interaction.sent_at


class ErrorRecords(logging.Handler):
    """Keep every record at ERROR or above."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class LoopProbe:
    """Sleep 10 ms at a time and record how much later than asked the loop woke us.

    With ``trace_after``, a stall longer than that prints every thread's stack (faulthandler's watchdog runs
    without the GIL, so it also catches a thread that holds it), then the stall's length: the way to find what
    blocks the loop. A diagnostic only: reading other threads' frames without the GIL can crash the process.
    """

    def __init__(self, interval: float = 0.01, trace_after: float | None = None) -> None:
        self.interval = interval
        self.trace_after = trace_after
        self.lags: list[float] = []
        self.cpu: list[float] = []  # CPU seconds this process (all its threads) used during each sleep

    def starved(self, longer_than: float) -> tuple[int, int]:
        """Stalls longer than ``longer_than``, and in how many of them this process used under half a CPU.

        A thread holding the GIL runs on a CPU all through the stall it causes, unless the machine's other
        processes hold the cores: then the stall lasts longer than its cause (a 0.8 s collection took 2.2 s).
        """
        stalls = [(lag, cpu) for lag, cpu in zip(self.lags, self.cpu, strict=True) if lag >= longer_than]
        return len(stalls), sum(cpu < 0.5 * (lag + self.interval) for lag, cpu in stalls)

    async def run(self) -> None:
        try:
            while True:
                if self.trace_after:
                    faulthandler.dump_traceback_later(self.interval + self.trace_after)
                began, cpu = time.perf_counter(), time.process_time()
                await asyncio.sleep(self.interval)
                lag = time.perf_counter() - began - self.interval
                self.cpu.append(time.process_time() - cpu)
                self.lags.append(lag)
                if self.trace_after and lag > self.trace_after:  # says how long the stall just dumped lasted
                    print(f"^ stall of {lag * 1000:.0f} ms", file=sys.stderr, flush=True)
        finally:
            faulthandler.cancel_dump_traceback_later()


class CollectorPauses:
    """Record how long each garbage collection holds the GIL (a stall for every thread, the event loop's too)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []  # (generation, seconds)
        self._began = 0.0

    def start(self) -> CollectorPauses:
        gc.callbacks.append(self._note)
        return self

    def stop(self) -> None:
        gc.callbacks.remove(self._note)

    def _note(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._began))

    def describe(self) -> str:
        full = [seconds for generation, seconds in self.pauses if generation == 2]
        longest = max((seconds for _, seconds in self.pauses), default=0.0)
        return f"{len(self.pauses)} collections, {len(full)} full; longest {longest * 1000:.0f} ms"


def load_articles(path: Path) -> list[tuple[str, str, list[str]]]:
    """Return (title, text, questions) for each article of a SQuAD v1.1 file."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    return [
        (
            entry["title"].replace("_", " "),
            "\n\n".join(p["context"] for p in entry["paragraphs"]),
            [qa["question"] for p in entry["paragraphs"] for qa in p["qas"]],
        )
        for entry in data
    ]


def seed(engine: Engine, servers: list[Server], articles: list[tuple[str, str, list[str]]]) -> None:
    """Give the servers their starting articles in turn, and each the questions about its own."""
    for n, (title, text, questions) in enumerate(articles):
        server = servers[n % len(servers)]
        engine.add_text(text, server.collection, title=title)
        server.questions.extend(questions)


@asynccontextmanager
async def running_bot(engine: Engine, fake: FakeDiscord) -> AsyncIterator[NewsQuoteBot]:
    """The real bot on ``engine``, connected to the fake and ready; closed on the way out."""
    settings = BotSettings(  # type: ignore[call-arg]  # _env_file: pydantic-settings, unknown to mypy
        _env_file=None, token=SecretStr(TOKEN), api_base_url=fake.base_url, gateway_url=fake.gateway_url
    )
    bot = NewsQuoteBot(engine, settings, guild_ready_timeout=0.01)
    await bot.login(TOKEN)
    connection = asyncio.create_task(bot.connect())
    try:
        await fake.wait_ready()
        await asyncio.wait_for(bot.wait_until_ready(), 10)
        yield bot
    finally:
        await bot.close()
        await connection


def build_world(servers: int, users: int) -> tuple[FakeDiscord, list[Server]]:
    """``servers`` servers, each with an owner (who may /rebuild) and an equal share of ``users`` members."""
    per_server = max(1, users // servers)
    world: list[Server] = []
    for n in range(servers):
        owner = make_user(f"owner{n}")
        members = [make_user(f"user{n}-{m}") for m in range(per_server)]
        guild = make_guild(
            f"Server {n}",
            owner=owner,
            members=[make_member(u) for u in members],
            channels=[make_channel(f"news-{n}")],
        )
        world.append(Server(guild, owner, members))
    return FakeDiscord(token=TOKEN, guilds=[s.guild for s in world]), world


FINAL_EDITS = ("Added", "Already here", "Rebuilt")


def finished(command: Command) -> bool:
    """Whether the command has had its final reply (cheap: polled on the event loop under load)."""
    interaction = command.interaction
    if interaction.response_type == 4 or interaction.followups:
        return True
    return str((interaction.original or {}).get("content") or "").startswith(FINAL_EDITS)


def settle(fake: FakeDiscord, commands: list[Command]) -> None:
    """Fill in when each command got its final reply and, if it failed, what it said."""
    by_token: dict[str, list[RecordedRequest]] = {}
    for rec in fake.requests:
        if rec.path.startswith("/webhooks/"):
            by_token.setdefault(rec.path.split("/")[3], []).append(rec)
    for command in commands:
        interaction = command.interaction
        if interaction.response_type == 4:  # answered at once: only refusals and errors do that here
            command.done_at = interaction.acked_at
            command.outcome = str(interaction.callbacks[0]["data"].get("content"))
            continue
        for rec in by_token.get(interaction.token, []):
            body: dict[str, Any] = rec.json or {}
            content = str(body.get("content") or "")
            if rec.method == "POST":  # a followup: the answer, or a private error after a defer
                private = bool(int(body.get("flags") or 0) & EPHEMERAL)
                if command.kind == "ask" or private:
                    command.done_at = rec.at
                    command.outcome = content or "(no text)" if private or command.kind != "ask" else ""
                    break
            if rec.method == "PATCH" and content.startswith(FINAL_EDITS):
                command.done_at = rec.at
                break


async def at(moment: float, action: Callable[[], Any]) -> Any:
    await asyncio.sleep(max(0.0, moment - time.perf_counter()))
    return await action()


async def drive(args: argparse.Namespace, engine: Engine) -> None:
    rng = random.Random(args.seed)
    articles = load_articles(args.squad)
    starting = args.servers * args.articles_per_server
    if len(articles) < starting + args.adds:
        sys.exit(f"error: {args.squad} has {len(articles)} articles; this run needs {starting + args.adds}")
    fake, servers = build_world(args.servers, args.users)
    users = [(server, user) for server in servers for user in server.members]

    print(f"Indexing {starting} starting articles with {engine.settings.model}...", flush=True)
    began = time.perf_counter()
    seed(engine, servers, articles[:starting])
    print(f"  {time.perf_counter() - began:.0f} s", flush=True)
    uploads = articles[starting : starting + args.adds]

    errors = ErrorRecords()
    logging.getLogger().addHandler(errors)
    logging.getLogger().setLevel(logging.WARNING)
    async with fake, running_bot(engine, fake) as bot:
        settings = bot.settings

        asks_per_user = -(-args.asks // len(users))
        spacing = args.seconds / asks_per_user
        if spacing <= settings.ask_cooldown_seconds:
            print(f"warning: {asks_per_user} questions a user in {args.seconds} s run into the ask cooldown")
        start = time.perf_counter() + 0.5
        plans: list[tuple[float, str, Callable[[], Any]]] = []
        phases = {user["id"]: rng.uniform(0, spacing - settings.ask_cooldown_seconds) for _, user in users}
        for n in range(args.asks):
            server, user = users[n % len(users)]
            moment = start + phases[user["id"]] + (n // len(users)) * spacing
            options = {"question": rng.choice(server.questions)}
            send = _sender(fake, "ask", options, user["id"], server.channel_id)
            plans.append((moment, "ask", send))
        uploaders = [users[(n * len(users)) // max(1, args.adds)] for n in range(args.adds)]
        for (title, text, _), (server, user) in zip(uploads, uploaders, strict=True):
            attachment = fake.add_attachment(f"{title}.txt", f"{title}\n\n{text}".encode(), "text/plain")
            send = _sender(fake, "add file", {"attachment": attachment}, user["id"], server.channel_id)
            plans.append((start + rng.uniform(0, args.seconds), "add", send))
        rebuild = _sender(fake, "rebuild", {}, servers[0].owner["id"], servers[0].channel_id)
        plans.append((start + args.seconds * 0.1, "rebuild", rebuild))

        probe = LoopProbe(trace_after=args.trace_stalls)
        probing = asyncio.create_task(probe.run())
        collector = CollectorPauses().start()
        print(
            f"Sending {args.asks} /ask from {len(users)} users in {args.servers} servers over {args.seconds:.0f} s, "
            f"{args.adds} /add file and 1 /rebuild...",
            flush=True,
        )
        sent = await asyncio.gather(*(at(moment, send) for moment, _, send in plans))
        commands = [Command(kind, interaction) for (_, kind, _), interaction in zip(plans, sent, strict=True)]
        with suppress(TimeoutError):  # what never finished is counted as an error below
            await fake.wait_until(lambda: all(finished(c) for c in commands), timeout=ANSWER_DEADLINE)
        probing.cancel()
        collector.stop()
        settle(fake, commands)

    logging.getLogger().removeHandler(errors)
    report(engine.settings.model, commands, errors.records, probe, fake)
    print(f"garbage collection                    {collector.describe()}")


def _sender(fake: FakeDiscord, name: str, options: dict[str, Any], user_id: str, channel_id: str) -> Callable[[], Any]:
    return lambda: fake.send_interaction(name, options, user_id=user_id, channel_id=channel_id)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def report(
    model: str,
    commands: list[Command],
    error_records: list[logging.LogRecord],
    probe: LoopProbe,
    fake: FakeDiscord,
) -> None:
    failed = [c for c in commands if c.done_at is None or c.outcome]
    late = [c for c in commands if c.ack_seconds is None or c.ack_seconds > ACK_LIMIT]
    acks = [c.ack_seconds for c in commands if c.ack_seconds is not None]
    answers = [c.seconds for c in commands if c.kind == "ask" and c.seconds is not None and not c.outcome]
    adds = [c.seconds for c in commands if c.kind == "add" and c.seconds is not None]
    rebuilds = [c.seconds for c in commands if c.kind == "rebuild" and c.seconds is not None]
    errors = len(failed) + len(error_records) + len(fake.errors) + len(fake.unknown)

    print()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"model {model}, {os.cpu_count()} CPUs, load average {load} (other processes count too)")
    print(f"errors                                {errors}")
    for c in failed[:10]:
        print(f"  /{c.kind}: {c.outcome or 'no reply within the deadline'}")
    for record in error_records[:10]:
        print(f"  log: {record.name}: {record.getMessage()}")
    for rec, exc in fake.errors[:5]:
        print(f"  fake: {rec.method} {rec.path}: {exc!r}")
    for rec in fake.unknown[:5]:
        print(f"  unknown route: {rec.method} {rec.path}")
    print(f"not acknowledged within {ACK_LIMIT:.0f} s          {len(late)}   (slowest ack {max(acks):.3f} s)")
    if answers:
        p50, p95 = statistics.median(answers), _percentile(answers, 0.95)
        worst = max(answers)
        print(
            f"/ask time to answer p50 / p95 / max   {p50:.2f} / {p95:.2f} / {worst:.2f} s   ({len(answers)} answered)"
        )
    if adds:
        median = statistics.median(adds)
        print(f"/add file time p50 / max              {median:.1f} / {max(adds):.1f} s   ({len(adds)} added)")
    if rebuilds:
        print(f"/rebuild time                         {rebuilds[0]:.1f} s")
    worst, p99 = max(probe.lags) * 1000, _percentile(probe.lags, 0.99) * 1000
    print(f"largest event-loop stall              {worst:.0f} ms   (p99 {p99:.0f} ms)")
    stalls, starved = probe.starved(0.1)
    print(
        f"stalls >= 100 ms                      {stalls}, {starved} of them with this process under half a CPU "
        "(the machine's other processes stretched them)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load_bot", description=__doc__.split("\n\n")[0])
    parser.add_argument("squad", type=Path, help="a SQuAD v1.1 file, e.g. xquad.en.json")
    parser.add_argument("--asks", type=int, default=200)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--servers", type=int, default=5)
    parser.add_argument("--adds", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the questions keep coming")
    parser.add_argument("--articles-per-server", type=int, default=4, help="articles each server starts with")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--trace-stalls", type=float, metavar="SECONDS", help="print every thread's stack when the loop stalls longer"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as data_dir:
        engine = Engine(Settings(_env_file=None, data_dir=Path(data_dir)))  # type: ignore[call-arg]
        print(f"Loading {engine.settings.model}...", flush=True)
        began = time.perf_counter()
        _ = engine.embedder
        print(f"  {time.perf_counter() - began:.0f} s", flush=True)
        try:
            asyncio.run(drive(args, engine))
        finally:
            engine.close()


if __name__ == "__main__":
    main()
