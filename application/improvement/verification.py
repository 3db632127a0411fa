"""An improvement verified by replay: each goal's KPI over the improvement's scope in its
baseline and review periods, from the history as it stood at a pinned position of the log.

The figures follow the KPI definitions (projections/kpi/kpi_scope.py: a period of the KPI
read model gives its figure). What they were computed from is pinned with them:

- `log_position`: the store's notification log read up to (as far as the KPI read model had
  folded it); `baseline_log_position`: the
  baseline's, the first recorded verification's, so that later runs keep the baseline it
  showed while the review moves on;
- `kpi_definitions_version`: the definitions' version (another one refuses to recompute);
- `measured_at`: the instant a period still running is measured up to;
- `comparison_scope`: the scope the same KPI is shown over beside it (the whole desk when
  none is chosen), so a reviewer sees whether the change is the improvement's or everyone's.

Recomputing from the same pins gives the same figures, whatever came after: an incident with
events after the pinned position is folded again from its stored events up to it; any other
is as the KPI read model holds it, once the read model has folded the log that far. SLA
verdicts are the SLA read model's (docs/improvements.md says where that matters).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eventsourcing.utils import get_topic

from application.desk.errors import ReadModelBehind
from domain.improvement.design import Goal, Period, Scope
from domain.improvement.improvement import Improvement
from domain.incident.incident import Incident
from domain.shared_kernel.errors import DomainError
from projections.kpi.kpi_contributions import Interval
from projections.kpi.kpi_fact_fold import Fact, Intervals, fold
from projections.kpi.kpi_scope import (
    DEFINITIONS_VERSION,
    Figure,
    Replaced,
    ScopeFilter,
    measure,
    small,
)
from projections.runtime.envelope import Envelope
from projections.runtime.read_store import ReadStore

_INCIDENT = get_topic(Incident) + "."
Fold = tuple[Fact, dict[int, Interval]]
_PAGE = 10_000  # notifications read at a time after a pinned position
WHOLE_DESK: Scope = {
    "services": [],
    "categories": [],
    "groups": [],
    "priorities": [],
    "ticket_types": [],
    "channels": [],
}


class Unverifiable(DomainError):
    """The figures cannot be computed as asked (another definitions' version, say)."""


@dataclass(frozen=True)
class Pins:
    log_position: int
    baseline_log_position: int
    measured_at: datetime
    comparison_scope: Scope
    kpi_definitions_version: str = DEFINITIONS_VERSION

    def stored(self) -> dict[str, Any]:
        """As the aggregate keeps them: plain values only."""
        return {
            "log_position": self.log_position,
            "baseline_log_position": self.baseline_log_position,
            "kpi_definitions_version": self.kpi_definitions_version,
            "measured_at": self.measured_at.isoformat(),
            "comparison_scope": json.dumps(self.comparison_scope, sort_keys=True),
        }

    @classmethod
    def of(cls, pinned: Mapping[str, Any]) -> Pins:
        version = str(pinned.get("kpi_definitions_version"))
        if version != DEFINITIONS_VERSION:
            raise Unverifiable(
                f"the figures were pinned under KPI definitions {version!r}; these are"
                f" {DEFINITIONS_VERSION!r}"
            )
        return cls(
            int(pinned["log_position"]),
            int(pinned.get("baseline_log_position", pinned["log_position"])),
            datetime.fromisoformat(str(pinned["measured_at"])),
            json.loads(str(pinned.get("comparison_scope") or "null")) or WHOLE_DESK,
        )


@dataclass(frozen=True)
class History:
    """The event store as verification reads it (the composition root binds these)."""

    notifications_after: Callable[[int, int], Sequence[Any]]  # (position, limit): the next ones
    events_of: Callable[[str], list[Envelope]]  # one aggregate's, in version order
    # The last position up to which the KPI read model has folded every event (it raises
    # ReadModelBehind when it cannot tell).
    folded: Callable[[], int]


class Verification:
    """Computes control tables; the route records the final one through the desk."""

    def __init__(self, history: History, read_db: ReadStore) -> None:
        self.history, self.read_db = history, read_db

    def pins(
        self, improvement: Improvement, comparison: Scope | None, now: datetime | None = None
    ) -> Pins:
        """Pins for a verification now: the log as far as the KPI read model has folded it,
        and the baseline of the last recorded verification if there is one."""
        position = self.history.folded()
        recorded = improvement.verification["pinned"] if improvement.verification else {}
        baseline = int(recorded.get("baseline_log_position") or position)
        return Pins(position, baseline, now or datetime.now(UTC), comparison or WHOLE_DESK)

    def results(self, improvement: Improvement, pins: Pins) -> list[dict[str, Any]]:
        """Per goal: the baseline and review figures over the scope, and over the
        comparison scope, with the warnings a reviewer should read."""
        if self.history.folded() < max(pins.log_position, pins.baseline_log_position):
            raise ReadModelBehind("the KPI read model has not folded the log that far yet")
        scope = ScopeFilter.of(improvement.design["scope"])
        comparison = ScopeFilter.of(pins.comparison_scope)
        at = {p: self._as_of(p) for p in {pins.log_position, pins.baseline_log_position}}
        now = pins.measured_at.timestamp()
        rows = []
        for goal in improvement.goals:
            base = _Measure(self.read_db, goal, at[pins.baseline_log_position], now)
            review = _Measure(self.read_db, goal, at[pins.log_position], now)
            rows.append(_row(goal, base, review, scope, comparison))
        return rows

    def _as_of(self, position: int) -> Replaced:
        """The incidents changed after `position`, as they were at it (None: not yet
        logged): their fact and intervals folded from their events up to it."""
        first_after = self._first_versions_after(position)
        return {
            incident_id: _folded(self.history.events_of(incident_id), version)
            for incident_id, version in first_after.items()
        }

    def _first_versions_after(self, position: int) -> dict[str, int]:
        first: dict[str, int] = {}
        while batch := self.history.notifications_after(position, _PAGE):
            for notification in batch:
                if notification.topic.startswith(_INCIDENT):
                    incident_id = str(notification.originator_id)
                    version = int(notification.originator_version)
                    first[incident_id] = min(version, first.get(incident_id, version))
            position = int(batch[-1].id)
        return first


def _folded(events: Iterable[Envelope], before_version: int) -> Fold | None:
    """The incident's fact and intervals after its events before `before_version`."""
    fact: Fact | None = None
    changed: Intervals = {}
    for event in events:
        if event.aggregate_version >= before_version:
            break
        fact = fold(fact, event, changed)
    if fact is None:
        return None
    intervals = {seq: Interval(r[2], r[3], r[4], r[6], r[8]) for (_, seq), r in changed.items()}
    return fact, intervals


@dataclass(frozen=True)
class _Measure:
    """One goal's period, measured from the history at one pinned position."""

    read_db: ReadStore
    goal: Goal
    replaced: Replaced
    now: float

    def __call__(self, period: Period, scope: ScopeFilter) -> Figure:
        start, end = period["start"].timestamp(), period["end"].timestamp()
        with self.read_db.transaction(read_only=True) as tx:
            return measure(tx, scope, self.goal["kpi"], start, end, self.now, self.replaced)


def _row(
    goal: Goal, base: _Measure, review: _Measure, scope: ScopeFilter, comparison: ScopeFilter
) -> dict[str, Any]:
    periods = {"baseline": (base, goal["baseline"]), "review": (review, goal["review"])}
    figures = {name: measure(period, scope) for name, (measure, period) in periods.items()}
    compared = {name: measure(period, comparison) for name, (measure, period) in periods.items()}
    return {
        "goal_id": goal["id"],
        **{name: _plain(f) for name, f in figures.items()},
        "comparison": {name: _plain(f) for name, f in compared.items()},
        "warnings": [
            f"the {name} period has only {f.count} tickets behind its figure: too few for it"
            " to mean much"
            for name, f in figures.items()
            if small(f)
        ],
    }


def _plain(f: Figure) -> dict[str, Any]:
    return {"value": f.value, "count": f.count}


def recorded(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The results as the aggregate records them: the figures, not the warnings."""
    return [{k: v for k, v in row.items() if k != "warnings"} for row in results]
