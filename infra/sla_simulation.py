"""What-if: replay a period's history against a draft policy, beside what actually happened.

The draft run is a separate clock read model in an in-memory SQLite database, fed by the
same SlaClocksProjection class (in draft mode: only the draft applies, to every ticket, in
force for all time) from the event store's notification log. The live read model is only
read, for the actual figures; nothing is written anywhere.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from domain.sla.sla_policy import normalise_spec
from application.desk.service_desk import ServiceDesk
from infra.local_feed import NotificationFeed
from infra.sql import Database, SqliteDatabase
from projections.sla import sla_queries
from projections.runtime.runner import ProjectionRunner
from projections.sla.sla_clocks import SlaClocksProjection


def replay_draft(desk: ServiceDesk, draft: Mapping[str, Any], batch_size: int = 1000
                 ) -> tuple[SqliteDatabase, int]:
    """A clock read model of the whole history under `draft`; returns (db, events replayed)."""
    db = SqliteDatabase(":memory:")  # one connection per thread: use it on this thread only
    runner = ProjectionRunner(db, SlaClocksProjection(draft=normalise_spec(draft)))
    runner.setup()
    feed = NotificationFeed(desk.recorder, desk.mapper, [runner], batch_size)
    replayed = 0
    while count := feed.step():
        replayed += count
    return db, replayed


def simulate(desk: ServiceDesk, live_db: Database, draft: Mapping[str, Any], start: datetime,
             end: datetime, now: datetime | None = None) -> dict[str, Any]:
    """Compliance per priority and per group, draft beside actual, of clocks decided in
    [start, end). Running clocks count as in the compliance query (docs/sla.md)."""
    if end <= start:
        raise ValueError("the period must end after it starts")
    now = min(now or datetime.now(timezone.utc), end)
    db, replayed = replay_draft(desk, draft)
    try:
        with db.transaction(read_only=True) as tx:
            drafted = sla_queries.decided(tx, start, end, now)
    finally:
        db.close()
    with live_db.transaction(read_only=True) as tx:
        actual = sla_queries.decided(tx, start, end, now)
    return {
        "from": start.isoformat(), "to": end.isoformat(), "events_replayed": replayed,
        "by_priority": _side_by_side(drafted, actual, "priority"),
        "by_group": _side_by_side(drafted, actual, "group"),
        "overall": _side_by_side(drafted, actual, None),
    }


def _side_by_side(drafted: list[dict], actual: list[dict], by: str | None) -> list[dict]:
    def table(rows):
        rows = [{**r, "all": "all"} for r in rows]
        return {(s["metric"], s["key"]): s for s in sla_queries.summarise(rows, by or "all")}

    draft_t, actual_t = table(drafted), table(actual)
    out = []
    for metric, key in sorted(set(draft_t) | set(actual_t)):
        pick = lambda t: {k: v for k, v in t[(metric, key)].items()  # noqa: E731
                          if k in ("met", "breached", "compliance_percent")} \
            if (metric, key) in t else None
        out.append({"metric": metric, "key": key, "draft": pick(draft_t),
                    "actual": pick(actual_t)})
    return out
