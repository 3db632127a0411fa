"""Benchmark: projection workers from Kafka into the read models (incidents + timeline).

    .venv/bin/python bench/projection.py [--events 100000] [--bootstrap HOST:PORT]
                                         [--read-db postgresql://...] [--profile]

1. Starts its own Kafka broker in a temp dir (unless --bootstrap is given).
2. Produces N envelopes onto a fresh 6-partition topic, keyed by incident id with the relay's
   headers, WITHOUT the event store: incidents go through a realistic lifecycle (Logged,
   Assigned, Acknowledged, PutOnHold, Resumed, Commented x k, Resolved, Closed), many open at
   once so that their events interleave. Produced in a child process, so that the producer's
   memory is not counted in the workers' RSS.
3. Runs one ProjectionWorker per read model, in threads of this process (as `itsm worker`
   does), from offset 0 until each has applied N events, and reports events/s per read model
   and for both, plus this process's RSS every 10k events (the kafka-python fetch buffers are
   part of it) with the slope over the second half.

A benchmark, not a test: it asserts nothing about timing. It does check that the read models
came out complete (one timeline row per event, incident versions summing to N).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import multiprocessing
import platform
import pstats
import random
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (  # noqa: E402
    RssSampler,
    cpu_count,
    kafka_broker,
    max_rss_mib,
    print_summary,
    print_table,
    rate,
    rss_mib,
    scratch_dir,
)

PRIORITY = {
    (i, u): p
    for i, row in enumerate("P1,P2,P3;P2,P3,P4;P3,P4,P4".split(";"), 1)
    for u, p in enumerate(row.split(","), 1)
}
GROUPS = ["service-desk", "desktop", "network", "database", "identity", "messaging"]
AGENTS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", None]
CALLERS = [f"user{n:04d}" for n in range(500)]
SERVICES = ["email", "vpn", "erp", "crm", "printing", "wifi", "sso", ""]
CATEGORIES = [
    ("hardware", "printer"),
    ("hardware", "laptop"),
    ("software", "install"),
    ("network", "connectivity"),
    ("access", "password"),
    ("", ""),
]
CHANNELS = ["portal", "phone", "email", "chat", "monitoring"]
HOLD_REASONS = ["awaiting_caller", "awaiting_vendor", "awaiting_change"]
COMMENTS = [
    "Called the user, will retry after reboot.",
    "Vendor ticket opened; waiting on their logs.",
    "Replaced the drum and ran a test page.",
    "Cleared the cached credentials and re-synced the profile.",
    "Checked switch port: errors on the uplink, swapped the cable.",
]


# ---------------------------------------------------------------- the event history


def incident_lifecycle(
    rng: random.Random, number: str, logged_version: int = 3
) -> list[tuple[str, int, dict]]:
    """(type, schema_version, payload) of one incident, from Logged to Closed."""
    impact, urgency = rng.randint(1, 3), rng.randint(1, 3)
    category, subcategory = rng.choice(CATEGORIES)
    actor_group = rng.choice(GROUPS)
    events = [
        (
            "Incident.Logged",
            logged_version,
            {
                "number": number,
                "title": f"{subcategory or 'Something'} broken for {number}",
                "description": "Reported via the benchmark generator; " * rng.randint(0, 3),
                "caller": rng.choice(CALLERS),
                "channel": rng.choice(CHANNELS),
                "service": rng.choice(SERVICES),
                "category": category,
                "subcategory": subcategory,
                "impact": impact,
                "urgency": urgency,
                "priority": PRIORITY[impact, urgency],
                "source": None,
                "external_ref": None,
            },
        ),
        (
            "Incident.Assigned",
            1,
            {"group": actor_group, "agent": rng.choice(AGENTS), "reassignment": False},
        ),
        ("Incident.Acknowledged", 1, {}),
        ("Incident.PutOnHold", 1, {"reason": rng.choice(HOLD_REASONS), "note": ""}),
        ("Incident.Resumed", 1, {}),
    ]
    for _ in range(rng.randint(1, 4)):
        events.append(
            ("Incident.Commented", 1, {"text": rng.choice(COMMENTS), "public": rng.random() < 0.3})
        )
    events.append(
        ("Incident.Resolved", 1, {"code": rng.choice(["fixed", "workaround"]), "notes": ""})
    )
    events.append(
        ("Incident.Closed", 1, {"satisfaction": rng.choice([None, 3, 4, 5]), "comment": ""})
    )
    return events


def generate(count: int, seed: int, run_tag: str, open_at_once: int = 500):
    """Yields (key, value, headers) for `count` envelopes, as the relay would publish them.

    `open_at_once` incidents are in flight at any time and their events interleave; each
    incident's own events stay in version order (they share a key, hence a partition).
    """
    from dataclasses import fields

    from domain.incident.incident import Incident
    from infra.event_store.publishing import event_id
    from projections.runtime.envelope import Envelope

    logged_version = getattr(Incident.Logged, "class_version", 1)
    has_recorded_at = "recorded_at" in {f.name for f in fields(Envelope)}

    rng = random.Random(seed)
    clock = datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc)
    tick = timedelta(milliseconds=750)
    opened = 0
    live: list[list] = []  # [aggregate id, lifecycle, next index, actor]
    for notification_id in range(1, count + 1):
        if len(live) < open_at_once:
            opened += 1
            live.append(
                [
                    str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    incident_lifecycle(rng, f"B{run_tag}-{opened:07d}", logged_version),
                    0,
                    {"id": rng.choice(AGENTS[:-1]), "kind": "person"},
                ]
            )
        slot = rng.randrange(len(live))
        incident = live[slot]
        aggregate_id, lifecycle, index, actor = incident
        kind, schema_version, payload = lifecycle[index]
        version = index + 1
        clock += tick
        envelope = Envelope(
            event_id=event_id(aggregate_id, version),
            type=kind,
            aggregate_id=aggregate_id,
            aggregate_version=version,
            schema_version=schema_version,
            occurred_at=clock,
            actor=actor if index else {"id": payload.get("caller", "system"), "kind": "person"},
            causation_id=f"req-{notification_id}",
            payload=payload,
            notification_id=notification_id,
            **({"recorded_at": clock} if has_recorded_at else {}),
        )
        headers = [
            ("event_type", kind.encode()),
            ("schema_version", str(schema_version).encode()),
            ("aggregate_version", str(version).encode()),
            ("notification_id", str(notification_id).encode()),
        ]
        yield aggregate_id.encode(), envelope.to_json(), headers
        incident[2] += 1
        if incident[2] == len(lifecycle):
            live[slot] = live[-1]
            live.pop()


def produce(
    bootstrap: str,
    topic: str,
    count: int,
    seed: int,
    run_tag: str,
    result,
    compression: str | None = None,
    open_at_once: int = 500,
) -> None:
    """Child process: publish the history, then report (seconds, bytes, end offsets)."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=50,
        batch_size=64 * 1024,
        max_request_size=4 * 1024 * 1024,
        compression_type=compression,
        client_id="itsm-bench-producer",
    )
    failures: list[BaseException] = []
    started, size = time.perf_counter(), 0
    for key, value, headers in generate(count, seed, run_tag, open_at_once):
        size += len(value)
        producer.send(topic, key=key, value=value, headers=headers).add_errback(failures.append)
    producer.flush()
    seconds = time.perf_counter() - started
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
    ends = {tp.partition: offset for tp, offset in consumer.end_offsets(partitions).items()}
    consumer.close()
    result.send((seconds, size, ends, [repr(f) for f in failures[:3]], len(failures)))


def publish_history(
    bootstrap: str,
    topic: str,
    count: int,
    seed: int,
    run_tag: str,
    compression: str | None = None,
    open_at_once: int = 500,
):
    # fork before this process has any thread or Kafka client: the producer's buffers live
    # and die in the child and stay out of the workers' RSS.
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(
        target=produce,
        args=(bootstrap, topic, count, seed, run_tag, send, compression, open_at_once),
    )
    child.start()
    send.close()
    try:
        outcome = receive.recv()
    except EOFError:
        outcome = None
    child.join()
    if outcome is None or child.exitcode != 0:
        raise SystemExit(f"producer process failed (exit code {child.exitcode})")
    seconds, size, ends, failures, failed = outcome
    if failed:
        raise SystemExit(f"{failed} sends failed, e.g. {failures}")
    return seconds, size, ends


# ---------------------------------------------------------------- the workers


@dataclass
class Progress:
    name: str
    applied: int = 0
    batches: int = 0
    first_poll: float | None = None
    first_record: float | None = None
    done: float | None = None
    error: BaseException | None = None
    profile: cProfile.Profile | None = None


def kpi_facts_only():
    """The KPI read model as it was before its cells: per-incident facts, state intervals and
    source links, no pre-aggregation. Measured beside `kpis` (--one-at-a-time), it gives
    what the cells cost a rebuild, in one run."""
    from projections.kpi import kpi_facts
    from projections.kpi.kpi_views import load_facts

    class KpiFactsOnly(kpi_facts.KpiProjection):
        name = "kpis_facts"
        tables = ("kpi_facts", "kpi_intervals", "kpi_source_links")

        def apply_many(self, tx, events):
            incidents = [e for e in events if e.aggregate_type == "Incident"]
            facts = load_facts(tx, {e.aggregate_id for e in incidents})
            intervals = {}
            for event in incidents:
                facts[event.aggregate_id] = kpi_facts.fold(
                    facts.get(event.aggregate_id), event, intervals
                )
            kpi_facts._save_facts(tx, [f for f in facts.values() if f is not None])
            kpi_facts._save_intervals(tx, list(intervals.values()))

        def idle(self, tx):
            """No cells to count, no quantiles to refresh."""

        def owed(self, tx):
            return 0

    return KpiFactsOnly()


def isolated(projection, tag: str):
    """The same projection under a run-unique name, hence its own consumer group."""
    cls = type(projection)
    return type(f"Bench{cls.__name__}", (cls,), {"name": f"{cls.name}.bench-{tag}"})()


def settle(worker) -> None:
    """The read model's idle work done until it owes nothing (Projection.owed: what it
    still has to fold besides the events is part of the rebuild too), as the worker does
    while its feed is quiet."""
    owed = worker.runner.owed()
    while owed:
        worker.runner.idle(force=True)
        owed, was = worker.runner.owed(), owed
        if owed >= was:
            raise RuntimeError(f"{worker.runner.projection.name}: owes {owed} and does not settle")


def forget_shared(done, later) -> None:
    """Empty the read models that share tables with one still to run (the facts-only KPI
    read model's are the KPI read model's): each starts from nothing, as a rebuild does."""
    tables = {t for r in later for t in r.projection.tables}
    for runner in done:
        if tables & set(runner.projection.tables):
            runner.reset()


def run_workers(
    bootstrap: str,
    topic: str,
    runners,
    total: int,
    max_records: int | None,
    sampler: RssSampler,
    profile: bool,
    timeout: float,
) -> list[Progress]:
    from infra.messaging.projection_worker import ProjectionWorker

    kwargs = {"max_records": max_records} if max_records else {}
    workers = [ProjectionWorker(bootstrap, topic, r, **kwargs) for r in runners]
    progress = [Progress(r.projection.name) for r in runners]
    stop = threading.Event()
    deadline = time.perf_counter() + timeout

    def report() -> None:
        sampler.progress(min(p.applied for p in progress), **{p.name: p.applied for p in progress})

    def drive(worker, mine: Progress) -> None:
        if profile:
            mine.profile = cProfile.Profile()
            mine.profile.enable()
        try:
            mine.first_poll = time.perf_counter()
            while mine.applied < total and not stop.is_set():
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"{mine.name}: {mine.applied}/{total} after {timeout:.0f}s")
                applied = worker.step()
                if applied:
                    if mine.first_record is None:
                        mine.first_record = time.perf_counter()
                    mine.applied += applied
                    mine.batches += 1
                    report()
            settle(worker)
            mine.done = time.perf_counter()
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            mine.error = error
            stop.set()
        finally:
            if mine.profile:
                mine.profile.disable()
            worker.consumer.close()

    threads = [
        threading.Thread(target=drive, args=(w, p), name=f"bench-{p.name}")
        for w, p in zip(workers, progress, strict=True)
    ]
    sampler.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for p in progress:
        if p.error is not None:
            raise SystemExit(f"worker {p.name} failed: {p.error!r}")
    sampler.final(min(p.applied for p in progress), **{p.name: p.applied for p in progress})
    return progress


def verify(read_db, run_tag: str, total: int) -> tuple[int, int, int]:
    """(incidents, sum of their versions, timeline rows) of this run's incidents."""
    like = f"B{run_tag}-%"
    with read_db.transaction() as tx:
        incidents, versions = tx.execute(
            "SELECT COUNT(*), COALESCE(SUM(version), 0) FROM rm_incidents WHERE number LIKE %s",
            (like,),
        ).fetchone()
        lines = tx.execute(
            "SELECT COUNT(*) FROM rm_audit_trail t JOIN rm_incidents i ON i.id = t.aggregate_id"
            " WHERE i.number LIKE %s",
            (like,),
        ).fetchone()[0]
    return int(incidents), int(versions), int(lines)


def print_profile(progress: list[Progress], top: int) -> None:
    profiles = [p.profile for p in progress if p.profile is not None]
    if not profiles:
        return
    out = io.StringIO()
    stats = pstats.Stats(profiles[0], stream=out)
    for extra in profiles[1:]:
        stats.add(extra)
    stats.strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    print("\n== cProfile of both worker threads (figures above are slowed by profiling) ==")
    print(out.getvalue())


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--bootstrap", help="use this broker instead of starting one")
    ap.add_argument(
        "--read-db",
        help="read-model DB URL (default: SQLite in a temp dir); "
        "rows of each run are kept apart by unique incident numbers",
    )
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument(
        "--projections",
        default="incidents,timeline",
        help="comma-separated read models to run (default: both, concurrently)",
    )
    ap.add_argument(
        "--max-records",
        type=int,
        default=None,
        help="max_poll_records per worker (default: the worker's own default)",
    )
    ap.add_argument(
        "--compression",
        choices=["gzip"],
        default=None,
        help="producer compression (default: none, as the relay publishes)",
    )
    ap.add_argument(
        "--one-at-a-time",
        action="store_true",
        help="run the read models one after the other over the same topic, and print each"
        " one's rate relative to the first (e.g. --projections kpis_facts,kpis)",
    )
    ap.add_argument("--sample-every", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument(
        "--open-at-once",
        type=int,
        default=500,
        help="incidents in flight at once, whose events interleave (a busy desk has thousands:"
        " each incident's events then land in different batches)",
    )
    ap.add_argument("--timeout", type=float, default=900.0, help="give up after this many s")
    ap.add_argument("--profile", action="store_true", help="cProfile the worker threads")
    ap.add_argument("--profile-top", type=int, default=30)
    args = ap.parse_args(argv)

    from infra.composition_root import default_projections
    from infra.messaging.kafka_topics import ensure_topics
    from infra.sql.database import connect
    from projections.runtime.runner import ProjectionRunner

    chosen = [n.strip() for n in args.projections.split(",") if n.strip()]
    known = {p.name: p for p in [*default_projections(), kpi_facts_only()]}
    projections = [known[name] for name in chosen if name in known]
    if len(projections) != len(chosen):
        raise SystemExit(f"unknown projection in {chosen}; known: {', '.join(known)}")
    run_tag = uuid.uuid4().hex[:8]
    topic = f"bench.{run_tag}.events"
    n = args.events

    print(
        f"projection benchmark: {n:,} events, {args.partitions} partitions, read models "
        f"{', '.join(chosen)}; Python {platform.python_version()}, {cpu_count()} CPUs",
        flush=True,
    )
    with (
        kafka_broker(args.bootstrap, partitions=args.partitions) as bootstrap,
        scratch_dir("itsm-bench-readdb-") as tmp,
    ):
        if args.bootstrap:  # a shared broker: never join a real read model's consumer group
            projections = [isolated(p, run_tag) for p in projections]
        ensure_topics(bootstrap, [topic], args.partitions)
        seconds, size, ends = publish_history(
            bootstrap, topic, n, args.seed, run_tag, args.compression, args.open_at_once
        )
        on_topic = sum(ends.values())
        print(
            f"produced {n:,} events ({size / 2**20:.1f} MiB JSON, compression "
            f"{args.compression or 'none'}) onto {topic} in "
            f"{seconds:.1f}s ({rate(n, seconds)}); per partition "
            f"{', '.join(f'{ends[p]:,}' for p in sorted(ends))}",
            flush=True,
        )
        if on_topic != n:
            raise SystemExit(f"topic holds {on_topic} records, expected {n}")

        read_url = args.read_db or f"sqlite:///{tmp / 'readmodels.db'}"
        read_db = connect(read_url)
        runners = [ProjectionRunner(read_db, p) for p in projections]
        for runner in runners:
            runner.setup()
        sampler = RssSampler(args.sample_every)
        sampler.baseline(**{r.projection.name: 0 for r in runners})
        print(
            f"read models in {read_url.split('@')[-1]}; RSS before the workers "
            f"{rss_mib():.1f} MiB; running workers...",
            flush=True,
        )
        groups = [[r] for r in runners] if args.one_at_a_time else [runners]
        progress = []
        for index, group in enumerate(groups):
            progress += run_workers(
                bootstrap, topic, group, n, args.max_records, sampler, args.profile, args.timeout
            )
            forget_shared(group, [r for later in groups[index + 1 :] for r in later])
        both = {"incidents", "timeline"} <= set(chosen)
        incidents, versions, lines = verify(read_db, run_tag, n) if both else (0, 0, 0)
        read_db.close()

    # ------------------------------------------------ report
    names = [p.name for p in progress]
    rows = [
        (
            s.events,
            f"{s.seconds:.1f}",
            *(s.extra.get(name, "") for name in names),
            f"{s.rss_mib:.1f}",
        )
        for s in sampler.samples
    ]
    print(
        "\nRSS of this process (workers' threads, SQLite/driver and kafka-python fetch "
        "buffers included)"
    )
    print_table(["applied to all", "elapsed s", *names, "RSS MiB"], rows)
    slope = sampler.slope_per(10_000)
    growth = sampler.growth_second_half()
    half = sampler.second_half()

    start = min(p.first_poll for p in progress)
    end = max(p.done for p in progress)
    wall = end - start
    items: list[tuple[str, object]] = [("events", f"{n:,} on {args.partitions} partitions")]
    for p in progress:
        own = p.done - p.first_poll
        items.append(
            (
                f"{p.name}",
                f"{own:.1f}s  {rate(n, own)}  ({p.batches} batches; "
                f"first record {p.first_record - p.first_poll:.2f}s "
                f"after first poll)",
            )
        )
    if args.one_at_a_time:
        first = progress[0]
        for p in progress[1:]:
            ratio = (first.done - first.first_poll) / (p.done - p.first_poll)
            items.append((f"{p.name} / {first.name}", f"{ratio:.2f} (events/s ratio, one run)"))
    items.append(
        (
            "both together",
            f"{wall:.1f}s  {rate(n * len(progress), wall)} applied "
            f"({rate(n, wall)} of history into every read model)",
        )
    )
    for mark in (10_000, 50_000, 100_000):
        sample = sampler.at(mark)
        if sample is not None and mark <= n:
            items.append((f"RSS at {mark // 1000}k", f"{sample.rss_mib:.1f} MiB"))
    items.append(("RSS peak (maxrss)", f"{max_rss_mib():.1f} MiB"))
    if half:
        items.append(
            (
                "second half",
                f"{half[0].events:,}..{half[-1].events:,} events: "
                f"{half[0].rss_mib:.1f} -> {half[-1].rss_mib:.1f} MiB",
            )
        )
    items.append(("slope (2nd half)", f"{slope:+.2f} MiB per 10k events"))
    # A leak grows; RSS that falls at the end (the fetch buffers drain once the workers reach
    # the end of the topic) is no leak, so flat means "grew by less than 5%".
    verdict = "FLAT" if growth < 0.05 else "GROWING"
    items.append(
        ("verdict", f"{verdict}: {growth * 100:+.1f}% over the second half (flat = grew < 5%)")
    )
    if incidents:
        ok = versions == n and lines == n
        items.append(
            (
                "read models",
                f"{incidents:,} incidents, versions sum {versions:,}, "
                f"{lines:,} timeline rows -> {'complete' if ok else 'WRONG'}",
            )
        )
    print_summary("projection benchmark", items)
    if incidents and not (versions == n and lines == n):
        return 1
    if args.profile:
        print_profile(progress, args.profile_top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
