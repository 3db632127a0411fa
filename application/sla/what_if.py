"""What-if: replay a period's history against a draft policy, beside what actually happened.

The draft run is a separate clock read model in an in-memory SQLite database, fed by the
same SlaClocksProjection class (in draft mode: only the draft applies, to every ticket, in
force for all time) from the event store's notification log. The live read model is only
read, for the actual figures; nothing is written anywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, Protocol

from domain.sla.sla_policy import normalise_spec
from projections.runtime.read_store import ReadStore
from projections.runtime.runner import ProjectionRunner
from projections.sla import sla_queries
from projections.sla.sla_clocks import SlaClocksProjection

Row = dict[str, Any]


class EventReplay(Protocol):
    def __call__(self, runners: list[ProjectionRunner], batch_size: int) -> int:
        """Feed every stored event to the runners; returns how many were replayed."""
        ...


class ScratchStore(ReadStore, Protocol):
    """A read store of its own for one simulation, closed once it was read."""

    def close(self) -> None: ...


class WhatIf:
    """Replays the history against a draft policy into a scratch read model."""

    def __init__(
        self, replay: EventReplay, scratch: Callable[[], ScratchStore], live: ReadStore
    ) -> None:
        self.replay, self.scratch, self.live = replay, scratch, live

    def replay_draft(
        self, draft: Mapping[str, Any], batch_size: int = 1000
    ) -> tuple[ScratchStore, int]:
        """A clock read model of the whole history under `draft`: (db, events replayed)."""
        db = self.scratch()  # an in-memory SQLite: use it on this thread only
        runner = ProjectionRunner(db, SlaClocksProjection(draft=normalise_spec(draft)))
        runner.setup()
        return db, self.replay([runner], batch_size)

    def simulate(
        self, draft: Mapping[str, Any], start: datetime, end: datetime, now: datetime | None = None
    ) -> dict[str, Any]:
        return simulate(self, draft, start, end, now)


def simulate(
    what_if: WhatIf,
    draft: Mapping[str, Any],
    start: datetime,
    end: datetime,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Compliance per priority and per group, draft beside actual, of clocks decided in
    [start, end). Running clocks count as in the compliance query (docs/sla.md)."""
    if end <= start:
        raise ValueError("the period must end after it starts")
    now = min(now or datetime.now(timezone.utc), end)
    db, replayed = what_if.replay_draft(draft)
    drafted = _decided_once(db, start, end, now)
    actual = _decided(what_if.live, start, end, now)
    period = {"from": start.isoformat(), "to": end.isoformat(), "events_replayed": replayed}
    return {**period, **_comparison(drafted, actual)}


def _decided(db: ReadStore, start: datetime, end: datetime, now: datetime) -> list[Row]:
    with db.transaction(read_only=True) as tx:
        return sla_queries.decided(tx, start, end, now)


def _decided_once(db: ScratchStore, start: datetime, end: datetime, now: datetime) -> list[Row]:
    try:
        return _decided(db, start, end, now)
    finally:
        db.close()


def _comparison(drafted: list[Row], actual: list[Row]) -> dict[str, list[Row]]:
    return {
        "by_priority": _side_by_side(drafted, actual, "priority"),
        "by_group": _side_by_side(drafted, actual, "group"),
        "overall": _side_by_side(drafted, actual, None),
    }


def _side_by_side(drafted: list[Row], actual: list[Row], by: str | None) -> list[Row]:
    draft_t, actual_t = _summary(drafted, by), _summary(actual, by)
    return [
        {
            "metric": metric,
            "key": key,
            "draft": _outcome(draft_t.get((metric, key))),
            "actual": _outcome(actual_t.get((metric, key))),
        }
        for metric, key in sorted(set(draft_t) | set(actual_t))
    ]


def _summary(rows: list[Row], by: str | None) -> dict[tuple[str, str], Row]:
    """Per (metric, value of `by`): met, breached, compliance; one "all" row without `by`."""
    rows = [{**r, "all": "all"} for r in rows]
    return {(s["metric"], s["key"]): s for s in sla_queries.summarise(rows, by or "all")}


def _outcome(summary: Row | None) -> Row | None:
    if summary is None:
        return None
    return {k: v for k, v in summary.items() if k in ("met", "breached", "compliance_percent")}
