"""Benchmark: SLA clock projection throughput and scheduler lateness.

    .venv/bin/python bench/sla.py [--incidents 3000] [--deadlines 10000] [--spread 60]

1. Projection: N incidents through a realistic lifecycle (logged, assigned, acknowledged,
   held awaiting the caller, resumed, reprioritised, reassigned, resolved, some reopened and
   resolved again, closed), their events interleaved, fed as published envelopes through the
   ProjectionRunner into a SQLite read model in batches of 500, as the in-process feed does.
   Reports events/s and clock updates/s (clock rows written).
2. Scheduler: 10,000 incidents in a SQLite event store whose respond clocks are made to fall
   due uniformly within one minute (from 5 s after the start); the scheduler runs in a
   thread, the in-process feed in another (so that recorded breaches flow back into the
   clock read model and the scheduler re-reads the changed rows, as in production).
   Reports lateness (recorded at - due) p50, p99 and max; target p99 <= 1 s.

A benchmark, not a test: it prints figures and checks only that every deadline was recorded
exactly once.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import scratch_dir  # noqa: E402


def bench_projection(incidents: int) -> None:
    from domain.incident.incident import Incident
    from domain.shared_kernel.actor import Actor
    from domain.shared_kernel.priority import PriorityMatrix
    from domain.sla.sla_policy import normalise_spec
    from infra.sql.database import SqliteDatabase
    from projections.runtime.runner import ProjectionRunner
    from projections.sla.sla_clocks import SlaClocksProjection
    from tests.builders import envelopes_of
    from tests.unit.test_sla_support import policy_envelope

    matrix, alice, rng = PriorityMatrix(), Actor("alice"), random.Random(7)
    t0 = datetime(2026, 3, 2, 8, tzinfo=UTC)
    spec = normalise_spec(
        {
            "name": "bench",
            "targets": {"respond": {"*": 3600}, "resolve": {"P1": 4 * 3600, "*": 24 * 3600}},
            "ola": {"network": {"*": 7200}, "desk": {"*": 3600}},
            "calendar": {
                "timezone": "Europe/Paris",
                "week": {
                    d: [["08:00", "12:00"], ["13:00", "18:00"]]
                    for d in ("mon", "tue", "wed", "thu", "fri")
                },
            },
        }
    )
    streams = []
    for n in range(incidents):
        at = t0 + timedelta(minutes=n)
        inc = Incident.log(
            number=f"B{n:07d}",
            title="t",
            caller="c",
            impact=rng.randint(1, 3),
            urgency=rng.randint(1, 3),
            matrix=matrix,
            by=alice,
            causation_id="b",
            at=at,
        )

        def step(m: int, at: datetime = at) -> datetime:
            return at + timedelta(minutes=m)

        inc.assign("desk", "a", alice, "b", at=step(2))
        inc.acknowledge(alice, "b", at=step(9))
        inc.hold("awaiting_caller", alice, "b", at=step(30))
        inc.resume(alice, "b", at=step(200))
        if (inc.impact, inc.urgency) != (1, 1):
            inc.reprioritise(1, 1, "worse", matrix, alice, "b", at=step(220))
        inc.assign("network", None, alice, "b", at=step(240))
        inc.resolve("fixed", "", alice, "b", at=step(600))
        if n % 5 == 0:
            inc.reopen("again", alice, "b", at=step(700))
            inc.resolve("fixed", "", alice, "b", at=step(800))
        inc.close(alice, "b", at=step(900))
        streams.append(inc.collect_events())
    # Interleave: many incidents open at once, each one's events in order.
    events, cursors = [], [0] * len(streams)
    live = list(range(len(streams)))
    while live:
        i = rng.choice(live)
        events.append(streams[i][cursors[i]])
        cursors[i] += 1
        if cursors[i] == len(streams[i]):
            live.remove(i)
    envelopes = [policy_envelope(spec, at=t0 - timedelta(days=1))] + envelopes_of(events)
    with scratch_dir("itsm-bench-sla-") as tmp:
        projection = SlaClocksProjection()
        runner = ProjectionRunner(SqliteDatabase(tmp / "read.db"), projection)
        runner.setup()
        position, started = 0, time.perf_counter()
        for start in range(0, len(envelopes), 500):
            batch = [(start + i, e) for i, e in enumerate(envelopes[start : start + 500])]
            position = runner.apply_batch("bench", 0, position, batch)
        seconds = time.perf_counter() - started
    print(
        f"projection: {len(envelopes)} events, {projection.clock_writes} clock updates "
        f"in {seconds:.2f} s: {len(envelopes) / seconds:,.0f} events/s, "
        f"{projection.clock_writes / seconds:,.0f} clock updates/s "
        f"(business calendar Europe/Paris, SQLite, batches of 500)"
    )


def bench_scheduler(deadlines: int, spread: float) -> None:
    import orjson

    from domain.incident.incident import Incident
    from domain.shared_kernel.actor import Actor
    from domain.shared_kernel.priority import PriorityMatrix
    from infra.composition_root import bootstrap
    from infra.settings import Settings
    from projections.runtime.time_text import iso

    with scratch_dir("itsm-bench-sla-") as tmp:
        container = bootstrap(Settings(data_dir=tmp, sla_scheduler_poll=0.2))
        desk, alice = container.desk, Actor("alice")
        started = time.perf_counter()
        for start in range(0, deadlines, 500):
            batch = [
                Incident.log(
                    number=f"S{n:07d}",
                    title="t",
                    caller="c",
                    impact=2,
                    urgency=2,
                    matrix=PriorityMatrix(),
                    by=alice,
                    causation_id="b",
                )
                for n in range(start, min(start + 500, deadlines))
            ]
            desk.save(*batch)
        container.feed.catch_up()
        print(
            f"scheduler: {deadlines} incidents stored and projected in "
            f"{time.perf_counter() - started:.1f} s"
        )
        # Make each respond clock fall due at a chosen instant within the next minute: its
        # breach alarm (no warnings) at a uniform random time from 5 s to 5 s + spread.
        first = time.time() + 5
        rng = random.Random(11)
        with container.read_db.transaction() as tx:
            seq = int(tx.execute("SELECT value FROM sla_meta WHERE name = 'seq'").fetchone()[0]) + 1
            ids = [
                r[0]
                for r in tx.execute(
                    "SELECT ticket_id FROM sla_clocks WHERE metric = 'respond'"
                ).fetchall()
            ]
            rows = []
            for ticket_id in ids:
                due = iso(datetime.fromtimestamp(first + rng.uniform(0, spread), UTC))
                rows.append((due, orjson.dumps([[due, "breach", None]]).decode(), seq, ticket_id))
            tx.executemany(
                "UPDATE sla_clocks SET due_at = %s, alarms = %s, seq = %s"
                " WHERE ticket_id = %s AND metric = 'respond'",
                rows,
            )
            tx.execute("UPDATE sla_clocks SET alarms = NULL WHERE metric <> 'respond'")
            tx.execute("UPDATE sla_meta SET value = %s WHERE name = 'seq'", (seq,))
        container.feed.start(0.05)
        scheduler = container.sla_scheduler()
        stop = threading.Event()
        thread = threading.Thread(target=scheduler.run, args=(stop,), name="sla-scheduler")
        thread.start()
        deadline = first + spread + 60
        while scheduler.recorded < len(ids) and time.time() < deadline:
            time.sleep(0.5)
        stop.set()
        thread.join()
        container.feed.stop()
        late = sorted(scheduler.lateness)
        breaches = container.desk.recorder.max_notification_id() - deadlines - 1
        container.close()
    q = lambda p: late[min(len(late) - 1, int(p * len(late)))]  # noqa: E731
    print(
        f"scheduler: {scheduler.recorded}/{len(ids)} deadlines within {spread:.0f} s recorded "
        f"({breaches} SlaBreached events stored); lateness p50 {q(0.50) * 1000:.0f} ms, "
        f"p99 {q(0.99) * 1000:.0f} ms, max {late[-1] * 1000:.0f} ms "
        f"(target p99 <= 1000 ms; mean {statistics.mean(late) * 1000:.0f} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=3000)
    parser.add_argument("--deadlines", type=int, default=10_000)
    parser.add_argument("--spread", type=float, default=60.0)
    parser.add_argument("--skip-projection", action="store_true")
    parser.add_argument("--skip-scheduler", action="store_true")
    args = parser.parse_args()
    if not args.skip_projection:
        bench_projection(args.incidents)
    if not args.skip_scheduler:
        bench_scheduler(args.deadlines, args.spread)


if __name__ == "__main__":
    main()
