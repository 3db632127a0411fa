"""KPIs for analysts: by period and dimension, as JSON, CSV or a chart (docs/kpis.md)."""

# No `from __future__ import annotations`: FastAPI must see the Annotated dependencies.
import csv
import io
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Response
from fastapi.exceptions import RequestValidationError

from api.deps import ContainerDep, ReadDbDep, require
from api.kpi.kpi_chart import line_chart
from api.kpi.kpi_schemas import Dimension, KpiReport, Period
from api.problem_details import ProblemDetails
from application.access import Principal, Role
from projections.kpi.kpi_queries import KPI_FIELDS, KpiQueryError, kpis, state_breakdown

PROBLEMS = {
    code: {"model": ProblemDetails, "content": {"application/problem+json": {}}}
    for code in (400, 401, 403, 422)
}
router = APIRouter(prefix="/v1/kpis", tags=["kpis"], responses=PROBLEMS)

Analyst = Annotated[Principal, Depends(require(Role.ANALYST, Role.MANAGER))]
MAX_SERIES = 10
_MOMENT = (
    "An ISO date (a whole day: `from` its start, `to` its end) or date-time;"
    " without an offset, in `tz`. Default: the span of the data."
)


def _invalid(field: str, message: str) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", field), "msg": message}]
    )


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise _invalid(
            "tz", f"{tz!r} is not an IANA time zone such as UTC or Europe/Paris"
        ) from None


def _moment(text: str | None, field: str, zone: ZoneInfo, end: bool) -> datetime | None:
    if text is None:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day + timedelta(days=1) if end else day, time(), zone)
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise _invalid(field, f"{text!r} is not an ISO date (2016-03-01) or date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def _has_sla(container) -> bool:
    return any(r.projection.name == "sla_clocks" for r in container.runners)


def _report(
    db, container, start: str | None, end: str | None, period: str, group_by: str | None, tz: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    zone = _zone(tz)
    begin, finish = _moment(start, "from", zone, False), _moment(end, "to", zone, True)
    try:
        with db.transaction(read_only=True) as tx:
            rows = kpis(tx, begin, finish, period, group_by, tz, sla=_has_sla(container))
            steps = (
                state_breakdown(tx, begin or _first(rows), finish or _last(rows)) if rows else []
            )
    except KpiQueryError as error:
        raise HTTPException(422, str(error)) from None
    meta = {
        "period": period,
        "group_by": group_by,
        "timezone": tz,
        "start": rows[0]["period_start"] if rows else None,
        "end": rows[-1]["period_end"] if rows else None,
    }
    return {**meta, "steps": steps}, rows


def _first(rows: list[dict]) -> datetime:
    return datetime.fromisoformat(rows[0]["period_start"])


def _last(rows: list[dict]) -> datetime:
    return datetime.fromisoformat(rows[-1]["period_end"])


def _csv(rows: list[dict[str, Any]], group_by: str | None) -> str:
    columns = [
        "period",
        "period_start",
        "period_end",
        *([group_by] if group_by else []),
        *KPI_FIELDS,
    ]
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


@router.get(
    "",
    summary="KPIs by period and dimension (JSON, or CSV with Accept: text/csv)",
    response_model=KpiReport,
    responses={200: {"content": {"text/csv": {}}}},
)
def get_kpis(
    db: ReadDbDep,
    container: ContainerDep,
    _: Analyst,
    start: Annotated[str | None, Query(alias="from", description=_MOMENT)] = None,
    end: Annotated[str | None, Query(alias="to", description=_MOMENT)] = None,
    period: Period = "week",
    group_by: Dimension | None = None,
    tz: Annotated[str, Query(description="IANA zone of the periods")] = "UTC",
    accept: Annotated[str | None, Header()] = None,
):
    """Volumes, backlog, response and resolution times, first-contact resolution, reopen
    rate, reassignments, SLA compliance, satisfaction and time per state, one row per
    period (and per value of `group_by`); definitions in docs/kpis.md."""
    meta, rows = _report(db, container, start, end, period, group_by, tz)
    if accept and "text/csv" in accept:
        return Response(
            _csv(rows, group_by),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="kpis.csv"'},
        )
    return {**meta, "rows": rows}


@router.get(
    "/chart",
    summary="Trend of one KPI as an SVG line chart",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}},
)
def get_chart(
    db: ReadDbDep,
    container: ContainerDep,
    _: Analyst,
    kpi: Annotated[str, Query(description=f"One of: {', '.join(KPI_FIELDS)}")],
    start: Annotated[str | None, Query(alias="from", description=_MOMENT)] = None,
    end: Annotated[str | None, Query(alias="to", description=_MOMENT)] = None,
    period: Period = "week",
    group_by: Dimension | None = None,
    tz: str = "UTC",
) -> Response:
    """One line per value of `group_by` (the ten with most incidents opened), or one line."""
    if kpi not in KPI_FIELDS:
        raise _invalid("kpi", f"unknown KPI {kpi!r}; one of {', '.join(KPI_FIELDS)}")
    _, rows = _report(db, container, start, end, period, group_by, tz)
    labels = list(dict.fromkeys(r["period"] for r in rows))
    if group_by:
        volume: dict[Any, int] = {}
        for r in rows:
            volume[r[group_by]] = volume.get(r[group_by], 0) + r["opened"] + r["backlog"]
        names = sorted(volume, key=lambda v: -volume[v])[:MAX_SERIES]
    else:
        names = [None]
    series: dict[str, list] = {}
    for name in names:
        points = {r["period"]: r[kpi] for r in rows if not group_by or r[group_by] == name}
        series["all" if name is None and not group_by else str(name or "(none)")] = [
            points.get(label) for label in labels
        ]
    title = f"{kpi.replace('_', ' ')} per {period}" + (f" by {group_by}" if group_by else "")
    return Response(line_chart(title, labels, series, y_label=kpi), media_type="image/svg+xml")
