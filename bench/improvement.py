"""An improvement verified by replay over a large scope: seconds per verification, against the
raw read of the scope's facts in the same run.

    .venv/bin/python bench/improvement.py --reuse DIR [--scope-incidents 100000] [--calls 5]
                                          [--tail 1000]

DIR is a dataset kept by `bench/queries.py --keep DIR` (its SQLite store and read models,
caught up); the bench opens it with the KPI read model only. It:

1. picks the periods: the review is the last three full months of the data, the baseline the
   same three months a year before;
2. picks the scope: assignment groups, largest first, until the incidents opened in the two
   periods reach `--scope-incidents`;
3. registers an improvement on that scope through the desk (propose, accept, goals: a mean
   time to resolve goal and a time-on-hold goal, the second one needing the state intervals);
4. times `Verification.results` (application/improvement/verification.py: pins, then both
   periods over the scope and over the whole desk) `--calls` times, for both goals and for
   each alone, and the raw floor: the first goal's fact rows read with no fold (the SELECTs
   its figures start from);
5. appends `--tail` events to incidents of the scope after the pin (a comment, back-dated into
   the review period) and recomputes from the old pins: every one of those incidents is folded
   again from its stored events up to the pin; the figures must not move.

Target (issue 11; read, not asserted): <= 2 s per goal verified over 100,000 incidents
(its baseline and review, over the scope and over the whole desk beside it), embedded
(SQLite). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from uuid import UUID

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import cpu_count, print_summary, rss_mib  # noqa: E402


def _settings(directory: Path):
    from infra.settings import Settings

    return Settings(
        _env_file=None,
        data_dir=directory,
        database_url=None,
        read_database_url=None,
        kafka_bootstrap=None,
    )


def _month(moment: datetime, months: int) -> datetime:
    """The first of the month `months` after (or before) the one of `moment`."""
    index = moment.year * 12 + moment.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def periods(tx) -> dict[str, dict[str, datetime]]:
    (last,) = tx.execute("SELECT MAX(opened_s) FROM kpi_facts").fetchone()
    end = _month(datetime.fromtimestamp(last, UTC), 0)
    review = {"start": _month(end, -3), "end": end}
    return {"baseline": {k: _month(v, -12) for k, v in review.items()}, "review": review}


def scope_groups(tx, chosen: dict[str, dict[str, datetime]], wanted: int) -> tuple[list[str], int]:
    """The largest groups until their incidents opened in the periods reach `wanted`."""
    where = " OR ".join("(opened_s >= %s AND opened_s < %s)" for _ in chosen)
    params = [t.timestamp() for p in chosen.values() for t in (p["start"], p["end"])]
    rows = tx.execute(
        f"SELECT owner_group, COUNT(*) FROM kpi_facts WHERE owner_group IS NOT NULL AND ({where})"
        " GROUP BY owner_group ORDER BY COUNT(*) DESC",
        params,
    ).fetchall()
    groups, total = [], 0
    for group, count in rows:
        if total >= wanted:
            break
        groups.append(str(group))
        total += int(count)
    return groups, total


def register(container, groups: list[str], chosen: dict[str, dict[str, datetime]]):
    from domain.improvement.commands import AcceptImprovement, ProposeImprovement, ReviseGoals
    from domain.shared_kernel.actor import Actor, ActorKind
    from domain.shared_kernel.command_context import Context

    ctx = Context(Actor("bench", ActorKind.PERSON), "bench-improvement")
    design = {"name": "Faster resolution", "area": "process", "scope": {"groups": groups}}
    improvement = container.desk.create(ProposeImprovement(design=design), ctx)
    container.desk.execute(improvement.id, AcceptImprovement(), ctx)
    spans = {name: {k: v.isoformat() for k, v in p.items()} for name, p in chosen.items()}
    goals = [
        {"id": "ttr", "kpi": "ttr_mean_hours", "direction": "decrease", **spans},
        {"id": "hold", "kpi": "mean_hours_in_on_hold", "direction": "decrease", **spans},
    ]
    for goal in goals:
        goal["target"] = {"kind": "relative", "value": 0.1}
    return container.desk.execute(improvement.id, ReviseGoals(goals=goals), ctx)


def one_goal(improvement, goal: dict) -> Any:
    """The improvement as a verification reads it, with one of its goals only."""
    return SimpleNamespace(design=improvement.design, goals=[goal], verification=None)


def timed(work, calls: int) -> tuple[list[float], Any]:
    seconds, result = [], None
    for _ in range(calls):
        started = time.perf_counter()
        result = work()
        seconds.append(time.perf_counter() - started)
    return seconds, result


def floor(container, groups: list[str], chosen) -> int:
    """The raw read: the time to resolve of the scope's incidents resolved in either period,
    and of the whole desk's (what the first goal's figures are made of), with no fold."""
    marks = ", ".join(["%s"] * len(groups))
    rows = 0
    with container.read_db.transaction(read_only=True) as tx:
        for period in chosen.values():
            bounds = [period["start"].timestamp(), period["end"].timestamp()]
            select = (
                "SELECT incident_id, first_resolved_s - opened_s FROM kpi_facts"
                " WHERE first_resolved_s >= %s AND first_resolved_s < %s"
            )
            rows += len(tx.execute(select, bounds).fetchall())
            in_scope = f"{select} AND owner_group IN ({marks})"
            rows += len(tx.execute(in_scope, [*bounds, *groups]).fetchall())
    return rows


def append_tail(container, improvement, count: int, chosen) -> int:
    """A comment on `count` incidents of the scope, back-dated into the review period."""
    from domain.incident.commands import Comment
    from domain.shared_kernel.actor import Actor, ActorKind
    from domain.shared_kernel.command_context import Context

    groups = improvement.design["scope"]["groups"]
    review = chosen["review"]
    with container.read_db.transaction(read_only=True) as tx:
        marks = ", ".join(["%s"] * len(groups))
        ids = tx.execute(
            f"SELECT incident_id FROM kpi_facts WHERE owner_group IN ({marks})"
            " AND opened_s >= %s AND opened_s < %s LIMIT %s",
            [*groups, review["start"].timestamp(), review["end"].timestamp(), count],
        ).fetchall()
    at = review["end"] - timedelta(hours=1)
    ctx = Context(Actor("bench", ActorKind.PERSON), "bench-tail", occurred_at=at)
    for (incident_id,) in ids:
        container.desk.execute(UUID(str(incident_id)), Comment(text="after the pin"), ctx)
    container.feed.catch_up()
    return len(ids)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reuse", type=Path, required=True, help="a bench/queries.py --keep DIR")
    ap.add_argument("--scope-incidents", type=int, default=100_000)
    ap.add_argument("--calls", type=int, default=5)
    ap.add_argument("--tail", type=int, default=1000)
    args = ap.parse_args(argv)

    from infra.composition_root import bootstrap
    from projections.kpi.kpi_facts import KpiProjection

    # The read model a verification reads, and only it: the others (millions of events
    # behind in a dataset whose KPI read model alone was rebuilt) would be replayed first.
    # The goals here read no SLA verdict, so the KPIs need not follow the SLA read model.
    settings = _settings(args.reuse / "sqlite")
    container = bootstrap(settings, [KpiProjection(settings.kpi_zones)])
    try:
        container.feed.catch_up()
        with container.read_db.transaction(read_only=True) as tx:
            chosen = periods(tx)
            groups, scoped = scope_groups(tx, chosen, args.scope_incidents)
        improvement = register(container, groups, chosen)
        verification = container.verification()
        spans = ", ".join(f"{n} {p['start']:%Y-%m}..{p['end']:%Y-%m}" for n, p in chosen.items())
        print(f"scope: {len(groups)} groups, {scoped:,} incidents opened in {spans}", flush=True)
        floor_s, facts = timed(lambda: floor(container, groups, chosen), args.calls)
        pins = verification.pins(improvement, None)
        verify_s, rows = timed(lambda: verification.results(improvement, pins), args.calls)
        for row in rows:
            print(f"  {row['goal_id']}: baseline {row['baseline']}, review {row['review']}")
        per_goal = {
            goal["id"]: timed(
                lambda g=goal: verification.results(one_goal(improvement, g), pins), args.calls
            )[0]
            for goal in improvement.goals
        }
        tail = append_tail(container, improvement, args.tail, chosen)
        again_s, again = timed(lambda: verification.results(improvement, pins), args.calls)
        same = [(r["baseline"], r["review"]) for r in rows] == [
            (r["baseline"], r["review"]) for r in again
        ]
        p50 = statistics.median
        print_summary(
            "improvement verification by replay (SQLite, embedded)",
            [
                ("machine", f"{cpu_count()} CPUs, Python {sys.version.split()[0]}"),
                ("floor: the first goal's fact rows", f"{p50(floor_s):.3f}s p50 ({facts:,} rows)"),
                *(
                    (
                        f"goal {goal_id} (scope + whole desk, both periods)",
                        f"{p50(seconds):.3f}s p50, {max(seconds):.3f}s max (target <= 2 s)",
                    )
                    for goal_id, seconds in per_goal.items()
                ),
                (
                    "verification (2 goals, scope + whole desk)",
                    f"{p50(verify_s):.3f}s p50, {max(verify_s):.3f}s max;"
                    f" x{p50(verify_s) / p50(floor_s):.1f} the floor",
                ),
                (
                    f"after {tail:,} events on scope incidents past the pin",
                    f"{p50(again_s):.3f}s p50, {max(again_s):.3f}s max; figures identical: {same}",
                ),
                ("RSS", f"{rss_mib():.0f} MiB"),
            ],
        )
    finally:
        container.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
