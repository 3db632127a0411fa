"""An improvement's goal KPIs week by week: the trend a reviewer reads beside the control
table, to see when a change set in and whether it lasts.

Each week is an ISO week in UTC (`projections/kpi/kpi_periods.py`, the KPI read model's own
weeks), from the Monday on or before the earliest baseline start to the week holding now, or
the latest review end if that comes first. A week's figure is `kpi_scope.figure` over the
improvement's scope, so it equals what `GET /v1/kpis?period=week` gives for that week (for a
scope the read model can group by). A trend is the history as known now: nothing is pinned.

The views are loaded once for the whole range; each week then reads only the incidents with
something in it (an incident whose first moment is after the week, or whose last moment and
interval ended before it, adds nothing to it), so a long range costs little more than a short
one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from domain.improvement.design import Goal, Period, Scope
from projections.kpi.kpi_contributions import IncidentView
from projections.kpi.kpi_periods import Period as Week
from projections.kpi.kpi_periods import periods
from projections.kpi.kpi_scope import STATE_KPIS, ScopeFilter, figure, scoped_views
from projections.runtime.envelope import Envelope
from projections.runtime.read_store import ReadStore

# The events that mark the implementation on the chart, and what the chart calls them.
MILESTONES = {
    "Approved": "approved",
    "ImplementationStarted": "implementation started",
    "ImplementationCompleted": "implementation completed",
}
_AGGREGATE = "Improvement"


@dataclass(frozen=True)
class Milestone:
    """A moment of the implementation: when the plan was approved, started, completed."""

    kind: str
    at: datetime


@dataclass(frozen=True)
class GoalSeries:
    """One goal's KPI per week (None: nothing to measure that week), and the tickets
    behind each figure."""

    goal_id: str
    kpi: str
    values: list[int | float | None]
    counts: list[int]


@dataclass(frozen=True)
class Trend:
    weeks: list[Week]
    series: list[GoalSeries]
    goals: list[Goal]  # their baseline and review periods are shaded on the chart
    milestones: list[Milestone] = field(default_factory=list)

    def plain(self) -> dict[str, Any]:
        """As JSON data: the weeks by their Monday, the values per goal."""
        return {
            "weeks": [week.label for week in self.weeks],
            "start": self.weeks[0].start.isoformat() if self.weeks else None,
            "end": self.weeks[-1].end.isoformat() if self.weeks else None,
            "goals": [
                {
                    "goal_id": s.goal_id,
                    "kpi": s.kpi,
                    "values": s.values,
                    "counts": s.counts,
                    **{name: _plain_period(goal[name]) for name in ("baseline", "review")},
                }
                for s, goal in zip(self.series, self.goals, strict=True)
            ],
            "milestones": [{"kind": m.kind, "at": m.at.isoformat()} for m in self.milestones],
        }


def _plain_period(period: Period) -> dict[str, str]:
    return {"start": period["start"].isoformat(), "end": period["end"].isoformat()}


def milestones(events: Iterable[Envelope]) -> list[Milestone]:
    """Every approval, start and completion of the implementation, in order: a plan revised
    after approval is approved (and may be started) again, and each time is history."""
    return [
        Milestone(MILESTONES[e.name], e.occurred_at.astimezone(UTC))
        for e in events
        if e.aggregate_type == _AGGREGATE and e.name in MILESTONES
    ]


def weeks_of(goals: Sequence[Goal], now: datetime) -> list[Week]:
    """The ISO weeks (UTC) from the earliest baseline start to now, or to the latest review
    end when that is earlier. Raises KpiQueryError for more weeks than a KPI query allows."""
    if not goals:
        return []
    start = min(goal["baseline"]["start"] for goal in goals)
    end = min(now, max(goal["review"]["end"] for goal in goals))
    return periods(start, end, "week", "UTC")


def weekly(
    read_db: ReadStore,
    goals: Sequence[Goal],
    scope: Scope,
    events: Iterable[Envelope] = (),
    now: datetime | None = None,
) -> Trend:
    """Each goal's KPI over the scope, week by week; the milestones from `events`."""
    now = now or datetime.now(UTC)
    weeks, scoped = weeks_of(goals, now), ScopeFilter.of(scope)
    if not weeks:
        return Trend([], [GoalSeries(g["id"], g["kpi"], [], []) for g in goals], list(goals))
    states = any(goal["kpi"] in STATE_KPIS for goal in goals)
    with read_db.transaction(read_only=True) as tx:
        views = scoped_views(tx, scoped, weeks[0].t0, weeks[-1].t1, states)
    spans = _Spans(views)
    at = now.timestamp()
    figures = [
        [_week_figure(spans, week, goal["kpi"], at, scoped) for week in weeks] for goal in goals
    ]
    series = [
        GoalSeries(goal["id"], goal["kpi"], [f[0] for f in row], [f[1] for f in row])
        for goal, row in zip(goals, figures, strict=True)
    ]
    return Trend(weeks, series, list(goals), milestones(events))


def _week_figure(
    spans: _Spans, week: Week, kpi: str, now: float, scope: ScopeFilter
) -> tuple[int | float | None, int]:
    measured = figure(spans.within(week.t0, week.t1), kpi, week.t0, week.t1, now, scope)
    return measured.value, measured.count


class _Spans:
    """Each view with the stretch of time it can count in: from its first moment or
    interval to its last (for ever while an interval is open)."""

    def __init__(self, views: Iterable[IncidentView]) -> None:
        self.spans = [(*_span(view), view) for view in views]

    def within(self, start: float, end: float) -> list[IncidentView]:
        """The views that may count in [start, end); the others add nothing to it."""
        return [view for first, last, view in self.spans if first < end and last >= start]


def _span(view: IncidentView) -> tuple[float, float]:
    times = [seconds for seconds, _ in view.moments.values()]
    times += [interval.entered_s for interval in view.intervals.values()]
    lefts = [interval.left_s for interval in view.intervals.values()]
    if not times:
        return float("inf"), float("-inf")
    last = float("inf") if None in lefts else max(times + [t for t in lefts if t is not None])
    return min(times), last
