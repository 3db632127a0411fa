"""Time spent per step (a state; holds split by reason) over a report's range: which steps
take longest. Read from the state cells of a reporting zone: whole months where the range
covers them, days at its ends, so a range of years reads a few hundred cells.

`stints` counts the times incidents were in the step within the range: those in it when the
range starts plus every entry into it; `mean_hours` is the time per stint.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from domain.incident.lifecycle import HoldReason
from projections.kpi.kpi_buckets import ReportingZone, month_first, month_key
from projections.runtime.read_store import Transaction

# The steps: each state, holds by reason (the reasonless "on_hold" row sums them).
STEPS = (
    "new",
    "in_progress",
    "resolved",
    "on_hold:",
    *(f"on_hold:{reason.value}" for reason in HoldReason),
)
# A bucket of the range: (grain, bucket, its start and its end in epoch seconds).
Tile = tuple[str, int, float, float]


def state_breakdown(
    tx: Transaction,
    start: datetime,
    end: datetime,
    tz: str = "UTC",
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Per step over [start, end) (whole days of `tz`): total hours, stints and hours per
    stint, slowest first."""
    zone = ReportingZone(tz)
    moment = (now or datetime.now(timezone.utc)).timestamp()
    first, last = zone.local_day(start.timestamp()), zone.local_day(end.timestamp())
    tiles = _tiles(zone, first, last)
    if not tiles:
        return []
    carried = _carried(tx, zone, first)
    totals = {step: [0.0, count] for step, count in carried.items()}
    cells = _cells(tx, zone, tiles)
    for grain, bucket, t0, t1 in tiles:
        for step, (_, _, entered) in cells.get((grain, bucket), {}).items():
            totals.setdefault(step, [0.0, 0.0])[1] += entered
        for step, total in totals.items():
            delta, weight, _ = cells.get((grain, bucket), {}).get(step, (0.0, 0.0, 0.0))
            if t0 < moment:
                total[0] += (carried.get(step, 0.0) + delta) * (min(moment, t1) - t0) - weight
            carried[step] = carried.get(step, 0.0) + delta
    return sorted(
        (
            _step(step, seconds, round(stints))
            for step, (seconds, stints) in totals.items()
            if stints
        ),
        key=lambda r: -(r["mean_hours"] or 0),
    )


def _step(step: str, seconds: float, stints: int) -> dict[str, Any]:
    state, _, reason = step.partition(":")
    return {
        "state": state,
        "hold_reason": reason or None,
        "total_hours": seconds / 3600,
        "stints": stints,
        "mean_hours": seconds / 3600 / stints,
    }


def _tiles(zone: ReportingZone, first: date, last: date) -> list[Tile]:
    """Days up to the first whole month, whole months, then days up to `last` (excluded)."""
    tiles: list[Tile] = []
    day = first
    while day < last:
        month = month_key(day)
        following = month_first(month + 1)
        if day.day == 1 and following <= last:
            tiles.append(_tile(zone, "month", month))
            day = following
        else:
            tiles.append(_tile(zone, "day", day.toordinal()))
            day = date.fromordinal(day.toordinal() + 1)
    return tiles


def _tile(zone: ReportingZone, grain: str, bucket: int) -> Tile:
    return grain, bucket, zone.start(grain, bucket), zone.start(grain, bucket + 1)


def _carried(tx: Transaction, zone: ReportingZone, first: date) -> dict[str, float]:
    """Per step, the incidents in it when the range starts."""
    month = month_key(first)
    carried: dict[str, float] = {}
    for grain, low, high in (
        ("month", None, month),
        ("day", month_first(month).toordinal(), first.toordinal()),
    ):
        for step, _, delta, _, _ in _sums(tx, zone, grain, low, high):
            carried[step] = carried.get(step, 0.0) + delta
    return carried


def _cells(
    tx: Transaction, zone: ReportingZone, tiles: list[Tile]
) -> dict[tuple[str, int], dict[str, tuple[float, float, float]]]:
    """(delta, weight, entered) per tile and step."""
    cells: dict[tuple[str, int], dict[str, tuple[float, float, float]]] = {}
    for grain, first, last in _runs(tiles):
        for step, bucket, delta, weight, entered in _sums(tx, zone, grain, first, last + 1):
            cells.setdefault((grain, bucket), {})[step] = (delta, weight, entered)
    return cells


def _sums(
    tx: Transaction, zone: ReportingZone, grain: str, low: int | None, high: int
) -> list[tuple[str, int, float, float, float]]:
    """(step, bucket, delta, weight, entered) of the priorities' cells (every incident has
    one) of buckets [low, high) of `grain`; the bucket is 0 without `low`, summed over all."""
    where = "zone = %s AND grain = %s AND dim = 'priority' AND step IN ("
    where += ", ".join(["%s"] * len(STEPS)) + ") AND bucket < %s"
    params: list[object] = [zone.name, grain, *STEPS, high]
    bucket = "0"
    if low is not None:
        where, bucket = where + " AND bucket >= %s", "bucket"
        params.append(low)
    rows = tx.execute(
        f"SELECT step, {bucket}, SUM(delta), SUM(weight), SUM(entered) FROM kpi_state_cells"
        f" WHERE {where} GROUP BY step{', bucket' if low is not None else ''}",
        params,
    ).fetchall()
    return [
        (str(r[0]), int(r[1]), float(r[2] or 0), float(r[3] or 0), float(r[4] or 0)) for r in rows
    ]


def _runs(tiles: list[Tile]) -> list[tuple[str, int, int]]:
    """The tiles as runs of one grain: (grain, first bucket, last bucket)."""
    runs: list[tuple[str, int, int]] = []
    for grain, bucket, *_ in tiles:
        if runs and runs[-1][0] == grain:
            runs[-1] = (grain, runs[-1][1], bucket)
        else:
            runs.append((grain, bucket, bucket))
    return runs
