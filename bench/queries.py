"""Analysts' KPI queries at a million tickets: p50/p99 over keep-alive HTTP, per engine.

    .venv/bin/python bench/queries.py [--engine sqlite|postgres|both] [--incidents 1000000]
                                      [--calls 30] [--warmup 2] [--seed 42] [--end 2026-11-01]
                                      [--keep DIR | --reuse DIR] [--build-only]
                                      [--read-models kpis,...] [--rebuild-limit SECONDS]
    .venv/bin/python bench/queries.py --engine postgres --read-models-from DIR

Per engine (SQLite files, or a throwaway PostgreSQL server from
infra/local_servers/postgres_cluster.py holding both the store and the read models):

1. Generate: N incidents (about 12 events each) over `--years` (3) before `--end`, written
   directly as stored events: each incident is the real `Incident` aggregate driven by the
   domain's commands with a back-dated `Context.occurred_at` (the mechanism of imported
   history; bench/_incident_history.py), mapped by the application's mapper and written with
   the recorder's `insert_events`, 10,000 incidents per transaction on SQLite (2,000 events
   per call on PostgreSQL), in time order across incidents. Seeded and streaming: memory
   follows the incidents in flight.
2. Rebuild: every read model from the notification log as `itsm projections rebuild` does
   it (infra/operations/read_model_rebuild.py: reset, then the in-process NotificationFeed and
   ProjectionRunner until the log is consumed), one at a time, KPI first; events/s of each
   (and per quarter of its time), against two raw floors measured in the same run: reading the
   notification log (`select_notifications`, the feed's batch size) and reading it decoded
   into envelopes (what every feed does before a read model folds anything).
3. Query: `itsm serve` in a subprocess over that store (embedded mode; the SLA scheduler off,
   so that no breach it records for the back-dated open incidents competes with the
   queries), an analyst key, every read model caught up first (one whose schema changed since
   `--keep` is replayed before the API starts), one keep-alive httpx client; after `--warmup`
   rounds, `--calls` rounds of the query mix (one call of each per round). p50 and p99 per
   query (with 30 calls p99 is the slowest call), and p50 / the p50 of `GET /health/live`
   (the floor).

Targets (issue 8; read, not asserted): p99 <= 50 ms for every `GET /v1/kpis` query and
chart, <= 20 ms for the last 12 months by month. `period=day` spans at most 1,000 periods, so
the day query asks for the last 365 days.

`--keep DIR` builds into DIR (sqlite/, postgres/, meta-<engine>.json) and keeps it;
`--reuse DIR` skips steps 1-2 and queries a dataset kept before. `--build-only` stops after
step 2 (`--read-models kpis` then rebuilds the KPI read model only); `--reuse DIR --as-is`
then queries it without catching up the others (the API process runs in Kafka mode towards
no broker, so it feeds no read model while it is measured). A benchmark, not a test.

`--engine postgres --read-models-from DIR` (implies `--as-is`) queries PostgreSQL over read
models COPIED from the SQLite dataset kept in DIR, not folded on PostgreSQL: folding 12M
events there takes hours, and the fold is proven identical on PostgreSQL by
tests/application/test_postgres_analytics.py. A throwaway server gets the project's own
schema (bootstrap: every runner's setup), then every row of the KPI read model's tables and
its rows of the framework tables (positions, versions, quarantine; its schema version is
checked equal to the code's, else the runner would reset it at start-up), table by table with
COPY FREEZE after a TRUNCATE in the same transaction, streamed from DIR/sqlite/readmodels.db
(opened immutable, read only); then VACUUM ANALYZE and a CHECKPOINT, before the API starts.
Its event store holds only what the API needs (the bench's key), so `GET /v1/incidents/{id}`
(replayed from the store) is left out of the mix. What this measures is the KPI queries'
speed on PostgreSQL over the same rows; the report says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (  # noqa: E402
    ROOT,
    cpu_count,
    max_rss_mib,
    percentile,
    print_summary,
    print_table,
    rss_mib,
)

CHUNK = 10_000  # incidents per insert transaction (SQLite)
PG_EVENTS_PER_INSERT = 2_000
KPI_TARGET_MS, YEAR_TARGET_MS = 50.0, 20.0
READ_MODELS_FIRST = "kpis"
COPY_FETCH = 10_000  # rows read from SQLite at a time while copying
# Their rows of each copied read model go along (positions, duplicates filter, quarantine);
# projection_schemas is the code's own, checked against the source's.
FRAMEWORK_TABLES = ("projection_positions", "projection_versions", "projection_quarantine")


# ---------------------------------------------------------------- where the data lives


@dataclass
class Engine:
    name: str
    data_dir: Path
    database_url: str | None = None  # None: SQLite files in data_dir

    def settings(self):
        from infra.settings import Settings

        # Explicit values: neither the environment nor a .env file may redirect a benchmark.
        return Settings(
            _env_file=None,
            data_dir=self.data_dir,
            database_url=self.database_url,
            read_database_url=None,
            kafka_bootstrap=None,
        )

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ITSM_")}
        env["ITSM_DATA_DIR"] = str(self.data_dir)
        if self.database_url:
            env["ITSM_DATABASE_URL"] = self.database_url
        return env


@contextmanager
def engine(name: str, base: Path) -> Iterator[Engine]:
    root = base / name
    root.mkdir(parents=True, exist_ok=True)
    if name == "sqlite":
        yield Engine(name, root)
        return
    from infra.local_servers.postgres_cluster import start_pg, stop_pg

    started = time.perf_counter()
    server = start_pg(root / "pgdata")
    print(f"postgres up in {time.perf_counter() - started:.1f}s at {server.url.split('@')[-1]}")
    try:
        yield Engine(name, root / "data", server.url)
    finally:
        stop_pg(server)


def reachable(path: Path) -> None:
    """The postgres OS user must cross every directory down to its data (we may be root)."""
    for part in [path, *path.parents]:
        if part == Path("/"):
            break
        try:
            mode = part.stat().st_mode
            if not mode & 0o001:
                part.chmod(mode | 0o711)
        except OSError:
            break


# ---------------------------------------------------------------- 1. generate


@dataclass
class Built:
    engine: str
    incidents: int
    seed: int
    end: str
    events: int = 0
    generate_s: float = 0.0  # domain commands + mapping, without the inserts
    insert_s: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)
    sample_ids: list[str] = field(default_factory=list)
    years: float = 3.0
    raw_read_per_s: float = 0.0
    decoded_read_per_s: float = 0.0
    decoded_sample: int = 0
    rebuild: dict[str, float] = field(default_factory=dict)  # read model -> seconds
    rebuilt_events: dict[str, int] = field(default_factory=dict)
    quarters: dict[str, list[float]] = field(default_factory=dict)  # events/s per quarter
    partial: list[str] = field(default_factory=list)  # stopped by --rebuild-limit
    facts_only: tuple[int, float] | None = None  # the KPI read model's floor: events, seconds
    states: dict[str, int] = field(default_factory=dict)
    store_mib: float = 0.0


def generate(container, args: argparse.Namespace, built: Built) -> None:
    from application.desk.ticket_numbers import FIRST
    from bench._incident_history import IncidentHistory, end_of
    from domain.shared_kernel.ticket_number_sequence import TicketNumberSequence

    desk = container.desk
    if desk.stored_events() > 100:
        raise SystemExit(f"{container.settings.store_url}: the store is not fresh")
    prefix = desk.number_prefix(desk.practice("incident")) or "INC"
    history = IncidentHistory(
        args.incidents,
        args.seed,
        end_of(args.end),
        desk.rules,
        desk.mapper,
        prefix=prefix,
        years=args.years,
    )
    recorder = desk.recorder
    # psycopg's pipeline (the recorder's insert) can hang on one very large message
    # (psycopg/psycopg#685, pure-Python libpq wrapper): a few thousand events per call.
    per_call = PG_EVENTS_PER_INSERT if container.store_db.dialect == "postgresql" else 10**9
    batch: list[Any] = []
    bar = tqdm(
        total=args.incidents, desc=f"{built.engine}: generate", unit=" incidents", disable=None
    )
    insert_s, started, inserted_at = 0.0, time.perf_counter(), 0
    for _, _, stored in history.counted():
        batch.append(stored)
        if history.stats.incidents - inserted_at >= CHUNK:  # one transaction per chunk
            insert_s += insert(recorder, batch, per_call)
            bar.update(history.stats.incidents - inserted_at)
            inserted_at, batch = history.stats.incidents, []
    # The sequence continues after the generated numbers: a ticket logged later gets the next.
    sequence = TicketNumberSequence(practice="incident", first=FIRST + args.incidents)
    batch.extend(desk.mapper.to_stored_event(e) for e in sequence.collect_events())
    insert_s += insert(recorder, batch, per_call)
    bar.update(history.stats.incidents - inserted_at)
    bar.close()
    built.events = history.stats.events
    built.insert_s = insert_s
    built.generate_s = time.perf_counter() - started - insert_s
    built.stats = {k: v for k, v in asdict(history.stats).items() if k != "by_type"}
    built.stats["by_type"] = dict(sorted(history.stats.by_type.items(), key=lambda kv: -kv[1]))
    built.sample_ids = history.sample_ids


def insert(recorder, batch: list[Any], per_call: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(batch), per_call):
        recorder.insert_events(batch[start : start + per_call])
    return time.perf_counter() - started


# ---------------------------------------------------------------- 2. rebuild and floors


def raw_floors(container, built: Built, decode_limit: int) -> None:
    """Events/s reading the whole notification log as the feed does (its batch size), and
    reading then decoding it into published envelopes (up to `decode_limit` events)."""
    from infra.event_store.publishing import published, to_envelope

    recorder, mapper = container.desk.recorder, container.desk.mapper
    size = container.settings.relay_batch_size
    total = container.desk.stored_events()
    read, start, started = 0, 1, time.perf_counter()
    with tqdm(total=total, desc=f"{built.engine}: raw read", unit=" events", disable=None) as bar:
        while notifications := recorder.select_notifications(start=start, limit=size):
            read += len(notifications)
            start = notifications[-1].id + 1
            bar.update(len(notifications))
    built.raw_read_per_s = read / (time.perf_counter() - started)
    decoded, start, started = 0, 1, time.perf_counter()
    while decoded < decode_limit and (
        notifications := recorder.select_notifications(start=start, limit=size)
    ):
        for n in notifications:
            published(to_envelope(mapper, n))
        decoded += len(notifications)
        start = notifications[-1].id + 1
    built.decoded_read_per_s = decoded / (time.perf_counter() - started)
    built.decoded_sample = decoded


def rebuild_all(container, built: Built, only: list[str] | None, limit: float | None) -> None:
    names = [r.projection.name for r in container.runners if not only or r.projection.name in only]
    names.sort(key=lambda n: n != READ_MODELS_FIRST)
    for name in names:
        if name == "kpis":
            facts_only(container, built, limit)
        count, seconds, quarters, whole = rebuild_one(container, name, limit)
        built.rebuilt_events[name], built.rebuild[name] = count, seconds
        built.quarters[name] = quarters
        if not whole:
            built.partial.append(name)
        print(
            f"  rebuilt {name:<12} {count:>12,} events in {seconds:8.1f}s "
            f"({count / seconds:,.0f}/s; by quarter of the time: "
            f"{', '.join(f'{q:,.0f}' for q in quarters)}/s)"
            + ("" if whole else f" PARTIAL: stopped after --rebuild-limit {limit:.0f}s")
            + f"; RSS {rss_mib():.0f} MiB",
            flush=True,
        )


def facts_only(container, built: Built, limit: float | None) -> None:
    """The floor of the KPI read model's rebuild: the read model as it was before its cells
    (bench/projection.py's kpi_facts_only), rebuilt in the same run on the same tables (the
    KPI read model's rebuild then starts from nothing)."""
    from bench.projection import kpi_facts_only
    from projections.runtime.runner import ProjectionRunner

    runner = ProjectionRunner(container.read_db, kpi_facts_only())
    runner.setup()
    count, seconds, _, whole = rebuild_runner(container, runner, limit)
    built.facts_only = (count, seconds) if whole else None
    print(
        f"  rebuilt {'kpis_facts':<12} {count:>12,} events in {seconds:8.1f}s "
        f"({count / seconds:,.0f}/s: the floor of the KPI read model's rebuild)",
        flush=True,
    )


def rebuild_one(container, name: str, limit: float | None) -> tuple[int, float, list[float], bool]:
    """`itsm projections rebuild NAME` without Kafka (infra/operations/read_model_rebuild.py):
    reset the read model, then step the in-process feed over the notification log until
    nothing is left; here with a progress bar, the rate in each quarter of the time and an
    optional time limit. Returns (events, seconds, events/s per quarter, whole)."""
    return rebuild_runner(container, container.runner(name), limit)


def rebuild_runner(container, runner, limit: float | None) -> tuple[int, float, list[float], bool]:
    from infra.event_store.notification_feed import NotificationFeed
    from infra.operations.read_model_rebuild import REPLAY_BATCH

    name = runner.projection.name
    runner.reset()
    feed = NotificationFeed(
        container.desk.recorder, container.desk.publishing_mapper, [runner], batch_size=REPLAY_BATCH
    )
    total = container.desk.stored_events()
    marks: list[tuple[float, int]] = [(0.0, 0)]
    replayed, started, whole = 0, time.perf_counter(), True
    with tqdm(total=total, desc=f"rebuild {name}", unit=" events", disable=None) as bar:
        while count := feed.step():
            replayed += count
            bar.update(count)
            marks.append((time.perf_counter() - started, replayed))
            if limit and marks[-1][0] > limit:
                whole = False
                break
        if whole:  # what the read model owes once fed (the KPI cells after the facts) counts
            feed.settle()
            marks.append((time.perf_counter() - started, replayed))
    seconds = time.perf_counter() - started
    return replayed, seconds, _quarters(marks, seconds), whole


def _quarters(marks: list[tuple[float, int]], seconds: float) -> list[float]:
    """Events/s in each quarter of the elapsed time (does the rate fall as tables grow?)."""
    rates = []
    for q in range(4):
        lo, hi = seconds * q / 4, seconds * (q + 1) / 4
        inside = [(t, n) for t, n in marks if lo <= t <= hi]
        if len(inside) < 2 or inside[-1][0] == inside[0][0]:
            rates.append(0.0)
            continue
        (t0, n0), (t1, n1) = inside[0], inside[-1]
        rates.append((n1 - n0) / (t1 - t0))
    return rates


def incident_states(container, built: Built) -> None:
    with container.read_db.transaction(read_only=True) as tx:
        rows = tx.execute("SELECT state, COUNT(*) FROM rm_incidents GROUP BY state").fetchall()
    built.states = {str(state): int(count) for state, count in sorted(rows)}


def build(eng: Engine, args: argparse.Namespace) -> Built:
    from infra.composition_root import bootstrap

    built = Built(
        eng.name, args.incidents, args.seed, str(args.end or "2026-11-01"), years=args.years
    )
    container = bootstrap(eng.settings())
    try:
        generate(container, args, built)
        per10k = 10_000 / args.incidents
        print(
            f"{eng.name}: generated {args.incidents:,} incidents, {built.events:,} events "
            f"({built.events / args.incidents:.1f} per incident): domain+mapping "
            f"{built.generate_s:.1f}s, inserts {built.insert_s:.1f}s "
            f"({(built.generate_s + built.insert_s) * per10k:.1f}s per 10k incidents); "
            f"RSS {rss_mib():.0f} MiB",
            flush=True,
        )
        raw_floors(container, built, decode_limit=args.decode_sample)
        rebuild_all(container, built, args.read_models, args.rebuild_limit)
        incident_states(container, built)
    finally:
        container.close()
    built.store_mib = store_size(eng)
    return built


def store_size(eng: Engine) -> float:
    if eng.database_url is None:
        return sum(p.stat().st_size for p in eng.data_dir.glob("*.db*")) / 2**20
    import psycopg

    with psycopg.connect(eng.database_url) as conn:
        return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0] / 2**20


# ---------------------------------------------------------------- 3. queries


def prepare(eng: Engine, as_is: bool = False) -> str:
    """A fresh analyst key (its name unique: a reused dataset keeps the ones before), and
    every read model caught up before the API starts: a read model whose schema version
    changed since the dataset was kept is dropped by its setup and replayed here, not by the
    API's feed while the queries are measured."""
    from domain.shared_kernel.actor import Actor
    from domain.shared_kernel.command_context import Context
    from infra.composition_root import bootstrap

    container = bootstrap(eng.settings())
    try:
        ctx = Context(Actor("bench"), f"bench-{uuid4()}")
        key = container.keys.issue(f"bench-queries-{uuid4().hex[:8]}", "analyst", ctx).secret
        last = container.desk.stored_events()
        behind = {
            name: last + 1 - position
            for name, position in container.feed_positions().items()
            if last + 1 - position > 100
        }
        if behind:
            print(
                f"{eng.name}: read models behind the store (schema changed?): "
                f"{', '.join(f'{n} by {b:,} events' for n, b in behind.items())}; catching up",
                flush=True,
            )
        if as_is:
            # What a feed does at the end of a catch-up: the idle work (the KPI quantiles of
            # the cells a replay left stale), so that no query pays for it.
            started = time.perf_counter()
            for runner in container.runners:
                runner.idle(force=True)
            print(
                f"{eng.name}: --as-is: read models served as they are, after their idle work"
                f" ({time.perf_counter() - started:.1f}s)",
                flush=True,
            )
            return key
        started = time.perf_counter()
        assert container.feed is not None  # embedded mode: no Kafka
        container.feed.catch_up()
        if behind:
            print(f"{eng.name}: caught up in {time.perf_counter() - started:.1f}s", flush=True)
        return key
    finally:
        container.close()


@contextmanager
def server(eng: Engine, as_is: bool = False) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**eng.env(), "ITSM_PORT": str(port), "ITSM_SLA_SCHEDULER_EMBEDDED": "false"}
    env["ITSM_REVIEW_REMINDERS_EMBEDDED"] = "false"
    if as_is:  # Kafka mode towards no broker: the API process feeds no read model
        env["ITSM_KAFKA_BOOTSTRAP"] = "127.0.0.1:9"
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "serve"], env=env, cwd=ROOT, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/health/live").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise SystemExit(f"itsm serve did not start:\n{log.read().decode()[-3000:]}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def query_mix(end: datetime) -> list[tuple[str, str, dict[str, str], float | None]]:
    """(label, path, params, target ms) of the analysts' mix; the floor first."""
    from bench._incident_history import a_year_before

    stamp = "%Y-%m-%dT%H:%M:%SZ"
    year_ago, to = a_year_before(end).strftime(stamp), end.strftime(stamp)
    kpi = KPI_TARGET_MS
    return [
        ("GET /health/live (floor)", "/health/live", {}, None),
        ("kpis month", "/v1/kpis", {"period": "month"}, kpi),
        ("kpis month by group", "/v1/kpis", {"period": "month", "group_by": "group"}, kpi),
        ("kpis week by priority", "/v1/kpis", {"period": "week", "group_by": "priority"}, kpi),
        (
            "kpis day by agent, last 365 d",
            "/v1/kpis",
            {"period": "day", "group_by": "agent", "from": year_ago, "to": to},
            kpi,
        ),
        ("kpis week by agent", "/v1/kpis", {"period": "week", "group_by": "agent"}, kpi),
        # The default page is 200 rows; a page of 1,000 (about 700 KiB of JSON by agent), as
        # a client asks for with `limit`, for the cost of a page's size.
        (
            "kpis week by agent, 1,000 rows",
            "/v1/kpis",
            {"period": "week", "group_by": "agent", "limit": "1000"},
            None,
        ),
        (
            "kpis last 12 months by month",
            "/v1/kpis",
            {"period": "month", "from": year_ago, "to": to},
            YEAR_TARGET_MS,
        ),
        ("chart opened (week)", "/v1/kpis/chart", {"kpi": "opened"}, kpi),
        (
            "chart ttr median by priority/month",
            "/v1/kpis/chart",
            {"kpi": "ttr_median_hours", "group_by": "priority", "period": "month"},
            kpi,
        ),
        ("GET /v1/incidents/{id}", "/v1/incidents/{id}", {}, None),
    ]


@dataclass
class Measured:
    label: str
    target: float | None
    seconds: list[float] = field(default_factory=list)
    size: int = 0
    errors: list[str] = field(default_factory=list)


def measure(base: str, key: str, ids: list[str], end: datetime, args) -> list[Measured]:
    mix = [m for m in query_mix(end) if ids or "{id}" not in m[1]]  # no ids: no store
    results = [Measured(label, target) for label, _, _, target in mix]
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
    rounds = args.warmup + args.calls
    with httpx.Client(base_url=base, headers=headers, timeout=600) as client:
        bar = tqdm(total=rounds * len(mix), desc="queries", unit=" calls", disable=None)
        for n in range(rounds):
            for (_, path, params, _), result in zip(mix, results, strict=True):
                if "{id}" in path:
                    path = path.replace("{id}", ids[n % len(ids)])
                started = time.perf_counter()
                response = client.get(path, params=params)
                seconds = time.perf_counter() - started
                bar.update(1)
                if response.status_code != 200:
                    result.errors.append(f"{response.status_code} {response.text[:200]}")
                    continue
                if n >= args.warmup:
                    result.seconds.append(seconds)
                    result.size = len(response.content)
        bar.close()
    return results


def report_queries(eng: Engine, results: list[Measured], note: str = "") -> None:
    floor = percentile(results[0].seconds, 0.5) if results[0].seconds else 0.0
    rows = []
    for r in results:
        if not r.seconds:
            rows.append((r.label, "-", "-", "-", "-", "-", f"errors: {r.errors[:1]}"))
            continue
        p50, p99 = percentile(r.seconds, 0.5) * 1e3, percentile(r.seconds, 0.99) * 1e3
        verdict = ""
        if r.target is not None:
            verdict = f"<= {r.target:.0f}: {'met' if p99 <= r.target else 'NOT met'}"
        rows.append(
            (
                r.label,
                f"{p50:.1f}",
                f"{p99:.1f}",
                f"{p50 / (floor * 1e3):.1f}x" if floor else "-",
                f"{r.size / 1024:.1f}",
                verdict,
                f"{len(r.errors)} errors" if r.errors else "",
            )
        )
    calls, load = len(results[0].seconds), os.getloadavg()[0]
    print(
        f"\n{eng.name}: query latency over one keep-alive connection ({calls} calls each; "
        f"load average {load:.1f} on {cpu_count()} CPUs at the end: the machine may be shared)"
    )
    if note:
        print(note)
    print_table(["query", "p50 ms", "p99 ms", "p50/floor", "KiB", "target p99 ms", ""], rows)
    for r in results:
        if r.errors:
            print(f"  {r.label}: {len(r.errors)} errors, e.g. {r.errors[0]}")


def report_build(b: Built) -> None:
    per10k = 10_000 / b.incidents
    items: list[tuple[str, object]] = [
        ("incidents", f"{b.incidents:,} over {b.years:g} years to {b.end} (seed {b.seed})"),
        ("events", f"{b.events:,} ({b.events / b.incidents:.1f} per incident)"),
        (
            "generate",
            f"domain+mapping {b.generate_s:.1f}s ({b.events / b.generate_s:,.0f} events/s), "
            f"insert_events {b.insert_s:.1f}s ({b.events / b.insert_s:,.0f} events/s); "
            f"{(b.generate_s + b.insert_s) * per10k:.2f}s per 10k incidents",
        ),
        (
            "raw floor: read log",
            f"{b.raw_read_per_s:,.0f} events/s (select_notifications, whole log)",
        ),
        (
            "raw floor: read+decode",
            f"{b.decoded_read_per_s:,.0f} events/s (to published envelopes, "
            f"first {b.decoded_sample:,} events)",
        ),
    ]
    total_s = sum(b.rebuild.values())
    events_per_10k = b.events / b.incidents * 10_000
    for name, seconds in b.rebuild.items():
        applied = b.rebuilt_events[name] / seconds
        items.append(
            (
                f"rebuild {name}",
                f"{'PARTIAL ' if name in b.partial else ''}{b.rebuilt_events[name]:,} events in "
                f"{seconds:.1f}s, {applied:,.0f} events/s = {applied / b.raw_read_per_s:.3f} x raw "
                f"read, {applied / b.decoded_read_per_s:.3f} x read+decode; "
                f"{events_per_10k / applied:.2f}s per 10k incidents",
            )
        )
        if name == "kpis" and b.facts_only and name not in b.partial:
            count, floor_s = b.facts_only
            items.append(
                (
                    "  against its facts",
                    f"{applied / (count / floor_s):.2f} x the facts-only read model (the KPI "
                    f"read model before its cells, same run: {count / floor_s:,.0f} events/s)",
                )
            )
    if b.rebuild:
        per10k_all = sum(events_per_10k * s / b.rebuilt_events[n] for n, s in b.rebuild.items())
        items.append(
            (
                "rebuild all",
                f"{total_s:.1f}s ({len(b.rebuild)} read models one after another); "
                f"{per10k_all:.2f}s per 10k incidents",
            )
        )
    items.append(("states at the end", ", ".join(f"{k} {v:,}" for k, v in b.states.items())))
    s = b.stats
    items.append(
        (
            "lifecycles",
            f"cancelled {s['cancelled']:,}, left untouched {s['untouched']:,}, stalled "
            f"{s['stalled']:,}, reassigned {s['reassigned']:,}, held {s['held']:,} "
            f"(+{s['long_held']:,} for months), reopened {s['reopened']:,}; "
            f"{s['dropped']:,} events after the end not recorded",
        )
    )
    items.append(("events by type", ", ".join(f"{k} {v:,}" for k, v in s["by_type"].items())))
    items.append(("store + read models", f"{b.store_mib:,.0f} MiB"))
    print_summary(f"{b.engine}: dataset and rebuild", items)


# ---------------------------------------------------------------- PostgreSQL over copied rows


@dataclass
class Copied:
    source: Path
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows copied
    copy_s: float = 0.0
    settle_s: float = 0.0


def run_copied(base: Path, args: argparse.Namespace) -> None:
    """--read-models-from: PostgreSQL queried over the read models of a SQLite dataset."""
    source = args.read_models_from
    built = Built(**json.loads((source / "meta-sqlite.json").read_text()))
    print(f"postgres: read models of {built.incidents:,} incidents copied from {source}")
    with engine("postgres", base) as eng:
        copied = copy_read_models(eng, source)
        report_copy(copied)
        # GET /v1/incidents/{id} replays the incident from the event store, not copied.
        query(eng, replace(built, sample_ids=[]), args, copied_note(copied))


def copy_read_models(eng: Engine, source: Path) -> Copied:
    """The schema is the project's (bootstrap), the rows the SQLite dataset's, copied before
    the API starts: its setup then finds the schema version and yearly rollups in place."""
    import psycopg

    kpis = pg_schema(eng)
    copied = Copied(source)
    path = source / "sqlite" / "readmodels.db"
    # immutable: read only, and no -shm/-wal created beside a dataset we must not touch
    src = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    started = time.perf_counter()
    try:
        check_schema(src, kpis)
        with psycopg.connect(eng.database_url) as pg:
            for table in kpis.tables:
                copied.rows[table] = copy_replacing(src, pg, table)
            for table in FRAMEWORK_TABLES:
                copied.rows[table] = copy_framework(src, pg, table, kpis.name)
    finally:
        src.close()
    copied.copy_s = time.perf_counter() - started
    copied.settle_s = settle(eng)
    return copied


def pg_schema(eng: Engine):
    """Bootstrap on the empty server: the project's own DDL; the KPI read model's projection."""
    from infra.composition_root import bootstrap

    container = bootstrap(eng.settings())
    container.close()
    return container.runner(READ_MODELS_FIRST).projection


def check_schema(src: sqlite3.Connection, projection) -> None:
    """Another schema version would make the runner's setup reset the copy at start-up."""
    row = src.execute(
        "SELECT schema_version FROM projection_schemas WHERE projection = ?", (projection.name,)
    ).fetchone()
    if row is None or int(row[0]) != projection.schema_version:
        raise SystemExit(
            f"{projection.name}: schema version {row and row[0]} in the dataset, "
            f"{projection.schema_version} in the code: rebuild it first"
        )


def copy_replacing(src: sqlite3.Connection, pg, table: str) -> int:
    """TRUNCATE then COPY FREEZE in one transaction: rows frozen and pages all-visible, as
    a read model long settled would be, without a vacuum pass over them."""
    with pg.transaction():
        pg.execute(f"TRUNCATE {table}")
        return copy_rows(src, pg, table, "", (), "WITH (FREEZE)")


def copy_framework(src: sqlite3.Connection, pg, table: str, name: str) -> int:
    """The read model's own rows only; the other read models' stay as bootstrap made them."""
    with pg.transaction():
        pg.execute(f"DELETE FROM {table} WHERE projection = %s", (name,))
        return copy_rows(src, pg, table, " WHERE projection = ?", (name,), "")


def copy_rows(src: sqlite3.Connection, pg, table: str, where: str, params, options: str) -> int:
    """Streamed: COPY_FETCH rows at a time from SQLite, never a whole table in memory."""
    columns = ", ".join(row[1] for row in src.execute(f"PRAGMA table_info({table})"))
    rows = src.execute(f"SELECT {columns} FROM {table}{where}", params)
    count = 0
    with (
        pg.cursor() as cursor,
        cursor.copy(f"COPY {table} ({columns}) FROM STDIN {options}") as copy,
        tqdm(desc=f"copy {table}", unit=" rows", disable=None) as bar,
    ):
        while chunk := rows.fetchmany(COPY_FETCH):
            for row in chunk:
                copy.write_row(row)
            count += len(chunk)
            bar.update(len(chunk))
    return count


def settle(eng: Engine) -> float:
    """Statistics for the planner; and neither an autovacuum nor a checkpoint of the copy
    left to run while the queries are measured."""
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(eng.database_url, autocommit=True) as pg:
        pg.execute("VACUUM (ANALYZE)")
        pg.execute("CHECKPOINT")
    return time.perf_counter() - started


def report_copy(c: Copied) -> None:
    total = sum(c.rows.values())
    items: list[tuple[str, object]] = [(t, f"{n:,} rows") for t, n in c.rows.items()]
    items.append(("total", f"{total:,} rows in {c.copy_s:.1f}s ({total / c.copy_s:,.0f}/s)"))
    items.append(("VACUUM (ANALYZE), CHECKPOINT", f"{c.settle_s:.1f}s"))
    print_summary(f"postgres: read models copied from {c.source}/sqlite/readmodels.db", items)


def copied_note(c: Copied) -> str:
    return (
        f"NOTE: these PostgreSQL read models were COPIED from the SQLite dataset's "
        f"({c.source}/sqlite/readmodels.db, {sum(c.rows.values()):,} rows), not folded on "
        f"PostgreSQL (the fold there is proven identical by "
        f"tests/application/test_postgres_analytics.py): this is the queries' speed on "
        f"PostgreSQL over the same rows. GET /v1/incidents/{{id}} is left out: it replays "
        f"the incident from the event store, which holds no incident here."
    )


# ---------------------------------------------------------------- main


def run_engine(name: str, base: Path, args: argparse.Namespace) -> None:
    if args.read_models_from:
        return run_copied(base, args)
    meta_path = base / f"meta-{name}.json"
    with engine(name, base) as eng:
        if args.reuse:
            if not meta_path.exists():
                raise SystemExit(f"{meta_path} not found: build it first with --keep {base}")
            built = Built(**json.loads(meta_path.read_text()))
            print(f"{name}: reusing {built.incidents:,} incidents, {built.events:,} events")
        else:
            built = build(eng, args)
            meta_path.write_text(json.dumps(asdict(built), indent=1))
            report_build(built)
        if args.build_only:
            return
        query(eng, built, args)


def query(eng: Engine, built: Built, args: argparse.Namespace, note: str = "") -> None:
    from bench._incident_history import end_of

    key = prepare(eng, args.as_is)
    with server(eng, args.as_is) as base_url:
        results = measure(base_url, key, built.sample_ids, end_of(built.end), args)
    report_queries(eng, results, note)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engine", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--incidents", type=int, default=1_000_000)
    ap.add_argument("--calls", type=int, default=30, help="measured calls of each query")
    ap.add_argument("--warmup", type=int, default=2, help="rounds of the mix first, not measured")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument(
        "--years",
        type=float,
        default=3.0,
        help="the history's span before --end; a million over 3 years is about 900 incidents"
        " a day, which 20,000 reach over --years 0.06",
    )
    ap.add_argument("--end", help="end of the history (ISO date or date-time; default 2026-11-01)")
    ap.add_argument(
        "--decode-sample",
        type=int,
        default=500_000,
        help="events read+decoded for the second raw floor (default 500,000)",
    )
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--keep", type=Path, help="build the dataset into DIR and keep it")
    where.add_argument("--reuse", type=Path, help="query a dataset kept with --keep DIR")
    where.add_argument(
        "--read-models-from",
        type=Path,
        metavar="DIR",
        help="with --engine postgres: query a throwaway PostgreSQL server over the read models "
        "COPIED from the SQLite dataset kept in DIR (not folded on PostgreSQL; DIR is only "
        "read); implies --as-is",
    )
    ap.add_argument("--build-only", action="store_true", help="generate and rebuild, no queries")
    ap.add_argument(
        "--as-is",
        action="store_true",
        help="with --reuse: serve the read models as they are, caught up or not (the API in "
        "Kafka mode towards no broker feeds none): for a dataset whose KPI read model alone "
        "was rebuilt (--read-models kpis)",
    )
    ap.add_argument(
        "--read-models",
        type=lambda text: [n.strip() for n in text.split(",") if n.strip()],
        help="with --build-only: rebuild only these (comma-separated, e.g. kpis); "
        "default all (the API would rebuild any left out while it is measured)",
    )
    ap.add_argument(
        "--rebuild-limit",
        type=float,
        help="with --build-only: stop each rebuild after this many seconds (rates of a part)",
    )
    args = ap.parse_args(argv)
    if args.read_models_from:
        if args.engine != "postgres":
            ap.error("--read-models-from needs --engine postgres")
        args.read_models_from = args.read_models_from.resolve()
        args.as_is = True  # the copy is the read models; nothing may fold over them
    if args.as_is and not (args.reuse or args.read_models_from):
        ap.error("--as-is needs --reuse or --read-models-from")
    if (args.read_models or args.rebuild_limit) and not args.build_only:
        ap.error("--read-models and --rebuild-limit need --build-only")
    engines = ["sqlite", "postgres"] if args.engine == "both" else [args.engine]

    dataset = f"the datasets in {args.reuse}" if args.reuse else f"{args.incidents:,} incidents"
    if args.read_models_from:
        dataset = f"the read models of {args.read_models_from}, copied"
    print(
        f"KPI query benchmark: {dataset}, engines {', '.join(engines)}; "
        f"Python {platform.python_version()}, {cpu_count()} CPUs",
        flush=True,
    )
    base = args.reuse or args.keep or Path(tempfile.mkdtemp(prefix="itsm-bench-queries-"))
    base = base.resolve()
    if args.keep and any(base.glob("meta-*.json")):
        raise SystemExit(f"{base} already holds a dataset: --reuse it, or pick another DIR")
    base.mkdir(parents=True, exist_ok=True)
    reachable(base)
    started = time.perf_counter()
    try:
        for name in engines:
            run_engine(name, base, args)
    finally:
        if not (args.keep or args.reuse):
            shutil.rmtree(base, ignore_errors=True)
    print(
        f"\ntotal {time.perf_counter() - started:.0f}s; peak RSS of this process "
        f"{max_rss_mib():.0f} MiB" + (f"; dataset kept in {base}" if args.keep else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
