"""KPIs for analysts: by period and dimension, as JSON, CSV or a chart (docs/kpis.md)."""

# No `from __future__ import annotations`: FastAPI must see the Annotated dependencies.
import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from fastapi import APIRouter, Depends, Header, Query, Response
from fastapi.responses import StreamingResponse

from api.deps import ContainerDep, ReadDbDep, require
from api.kpi.kpi_chart import MEDIA_TYPES, Format, line_chart
from api.kpi.kpi_schemas import MAX_ROWS, Dimension, KpiReport, Period
from api.kpi.paging import decode_cursor, encode_cursor, neutralise
from api.problem_details import problem_responses
from api.query_values import MOMENT_PATTERN, day_or_moment, invalid, ordered
from application.access import Principal, Role
from projections.kpi.kpi_queries import KPI_FIELDS, KpiQueryError, Report, state_breakdown
from projections.runtime.read_store import ReadStore, Transaction

Row = dict[str, Any]
PROBLEMS = problem_responses(400, 401, 403, 422)
router = APIRouter(prefix="/v1/kpis", tags=["kpis"], responses=PROBLEMS)

Analyst = Annotated[Principal, Depends(require(Role.ANALYST, Role.MANAGER))]
MAX_SERIES = 10
_MOMENT = (
    "An ISO date (a whole day: `from` its start, `to` its end) or date-time;"
    " without an offset, in `tz`. Default: the span of the data."
)
# Rows per JSON page unless asked: a screen's worth. A page's cost follows its rows (a row
# by agent is ~700 bytes of JSON), not the history's size; CSV streams every row.
PAGE = 200
_TZ = "The reporting zone of the periods: one of ITSM_KPI_ZONES (IANA names)"
_FORMAT = "`svg` (default, image/svg+xml) or `png` (image/png)"
From = Annotated[
    str | None,
    Query(
        alias="from",
        description=_MOMENT,
        json_schema_extra={"pattern": MOMENT_PATTERN},
        max_length=64,
    ),
]
To = Annotated[
    str | None,
    Query(
        alias="to",
        description=_MOMENT,
        json_schema_extra={"pattern": MOMENT_PATTERN},
        max_length=64,
    ),
]


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise invalid(
            "tz", f"{tz!r} is not an IANA time zone such as UTC or Europe/Paris"
        ) from None


@dataclass(frozen=True)
class _Ask:
    """A KPI query as asked: the range (parsed), the period, the dimension and the zone."""

    begin: datetime | None
    finish: datetime | None
    period: str
    group_by: str | None
    tz: str

    @classmethod
    def of(
        cls, start: str | None, end: str | None, period: str, group_by: str | None, tz: str
    ) -> "_Ask":
        zone = _zone(tz)
        begin = day_or_moment(start, "from", zone, end=False)
        finish = day_or_moment(end, "to", zone, end=True)
        if begin and finish:
            ordered(begin, finish)
        return cls(begin, finish, period, group_by, tz)

    def report(self, tx: Transaction) -> Report:
        try:
            return Report.of(tx, self.begin, self.finish, self.period, self.group_by, self.tz)
        except KpiQueryError as error:
            raise invalid(error.field, str(error)) from None


def _coverage(report: Report) -> Row:
    spans = report.periods
    return {
        "period": report.grain,
        "group_by": report.group_by,
        "timezone": report.zone.name,
        "start": spans[0].start.isoformat() if spans else None,
        "end": spans[-1].end.isoformat() if spans else None,
        "steps": _steps(report),
    }


def _steps(report: Report) -> list[Row]:
    if not report.periods:
        return []
    first, last = report.periods[0].start, report.periods[-1].end
    return state_breakdown(report.tx, first, last, report.zone.name)


def _pages(db: ReadStore, ask: _Ask) -> Iterator[Row]:
    """Every row of the report, a page per read transaction (a stream may outlast one)."""
    after: tuple[int, int] | None = None
    while True:
        with db.transaction(read_only=True) as tx:
            rows, after = ask.report(tx).page(after, _CSV_PAGE)
        yield from rows
        if after is None:
            return


def _csv(rows: Iterator[Row], group_by: str | None) -> Iterator[str]:
    """The CSV, a chunk of rows at a time; every text cell neutralised (docs/http.md)."""
    columns = [
        "period",
        "period_start",
        "period_end",
        *([group_by] if group_by else []),
        *KPI_FIELDS,
    ]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([neutralise(row.get(c)) for c in columns])
        if out.tell() > _CSV_CHUNK:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


_CSV_CHUNK = 64 * 1024  # characters per streamed chunk
_CSV_PAGE = 2000


@router.get(
    "",
    summary="KPIs by period and dimension (JSON, or CSV with Accept: text/csv)",
    response_model=KpiReport,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def get_kpis(
    db: ReadDbDep,
    container: ContainerDep,
    _: Analyst,
    start: From = None,
    end: To = None,
    period: Period = "week",
    group_by: Dimension | None = None,
    tz: Annotated[str, Query(description=_TZ, max_length=64)] = "UTC",
    limit: Annotated[int, Query(ge=1, le=MAX_ROWS, description="Rows per page (JSON)")] = PAGE,
    cursor: Annotated[
        str | None, Query(description="`next` of the previous page", max_length=64)
    ] = None,
    accept: Annotated[str | None, Header()] = None,
) -> KpiReport | Response:
    """Volumes, backlog, response and resolution times, first-contact resolution, reopen
    rate, reassignments, SLA compliance, satisfaction and time per state, one row per
    period (and per value of `group_by`); definitions in docs/kpis.md.

    JSON comes in pages of `limit` rows: `next` is the `cursor` of the following page (the
    same query otherwise), null on the last. CSV is every row, streamed."""
    after = decode_cursor(cursor)
    ask = _Ask.of(start, end, period, group_by, tz)
    with db.transaction(read_only=True) as tx:
        report = ask.report(tx)
        if accept and "text/csv" in accept:
            return _csv_download(db, ask, container.vault.reveal)
        rows, following = report.page(after, limit)
        coverage = _coverage(report)
    following_cursor = encode_cursor(following) if following else None
    page = {**coverage, "rows": rows, "limit": limit, "next": following_cursor}
    # The rows are the read model's own dicts, in KpiReport's shape (the contract tests hold
    # them to it): serialised as they are, not validated field by field again.
    return Response(orjson.dumps(page), media_type="application/json")


def _csv_download(db: ReadStore, ask: _Ask, reveal: Callable[[Row], Row]) -> Response:
    """Each row opened (an agent's name, or erased) before it is encoded."""
    return StreamingResponse(
        _csv(map(reveal, _pages(db, ask)), ask.group_by),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="kpis.csv"'},
    )


def _chart_series(
    report: Report, rows: list[Row], kpi: str
) -> tuple[list[str], dict[str, list[float | None]]]:
    """The periods, and per line (the values of `group_by` with most incidents opened in
    the range, or one line `all`) its value in each period."""
    labels = [p.label for p in report.periods]
    group_by = report.group_by
    if not group_by:
        return labels, {"all": _points(rows, kpi, labels)}
    names = [None if key == "" else key[1:] for key in report.values or ()]
    return labels, {
        str(name or "(none)"): _points([r for r in rows if r[group_by] == name], kpi, labels)
        for name in names
    }


def _points(rows: list[Row], kpi: str, labels: list[str]) -> list[float | None]:
    points = {r["period"]: r[kpi] for r in rows}
    return [points.get(label) for label in labels]


# A sync `def`: FastAPI runs it in its thread pool, so rendering does not hold up the event
# loop.
@router.get(
    "/chart",
    summary="Trend of one KPI as a line chart: SVG, or PNG with format=png",
    response_class=Response,
    responses={
        200: {
            "content": {
                "image/svg+xml": {"schema": {"type": "string"}},
                "image/png": {"schema": {"type": "string", "format": "binary"}},
            }
        }
    },
)
def get_chart(
    db: ReadDbDep,
    container: ContainerDep,
    _: Analyst,
    kpi: Annotated[str, Query(description=f"One of: {', '.join(KPI_FIELDS)}", max_length=64)],
    start: From = None,
    end: To = None,
    period: Period = "week",
    group_by: Dimension | None = None,
    tz: Annotated[str, Query(description=_TZ, max_length=64)] = "UTC",
    image: Annotated[Format, Query(alias="format", description=_FORMAT)] = "svg",
) -> Response:
    """One line per value of `group_by` (the ten with most incidents opened in the range),
    or one line.

    `format=svg` (the default) answers `image/svg+xml`, `format=png` a 900 x 420 PNG
    (`image/png`); the `Accept` header does not choose."""
    if kpi not in KPI_FIELDS:
        raise invalid("kpi", f"unknown KPI {kpi!r}; one of {', '.join(KPI_FIELDS)}")
    ask = _Ask.of(start, end, period, group_by, tz)
    with db.transaction(read_only=True) as tx:
        report = ask.report(tx).largest(MAX_SERIES)
        rows = list(report.rows())
    return _chart(report, rows, kpi, image, container.vault.open)


def _chart(
    report: Report, rows: list[Row], kpi: str, image: Format, name: Callable[[str], str]
) -> Response:
    """`name` opens a line's name (an agent's token) for its legend."""
    labels, series = _chart_series(report, rows, kpi)
    series = {name(line): points for line, points in series.items()}
    period, group_by = report.grain, report.group_by
    title = f"{kpi.replace('_', ' ')} per {period}" + (f" by {group_by}" if group_by else "")
    chart = line_chart(title, labels, series, y_label=kpi, format=image)
    return Response(chart, media_type=MEDIA_TYPES[image])
