"""An improvement's trend chart and its report (HTML or PDF): the reads a review board takes
into the room.

The trend's figures are the application's (application/improvement/trend.py), drawn with the
KPI chart's figure, canvas, axes and text helpers (api/kpi/kpi_chart.py): the same look,
the same thread safety (one Figure per chart, never pyplot), fixed margins. The report is a
Jinja2 template with autoescaping on, since every free text in it is user input; its PDF is
the same template drawn by fpdf2 (pure Python, with matplotlib's DejaVu fonts for Unicode).
"""

# No `from __future__ import annotations`: FastAPI must see the Annotated dependencies.
import base64
import io
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pydantic import BaseModel

from api.deps import ContainerDep, require
from api.improvement.improvement_routes import READERS
from api.kpi.kpi_chart import (
    DPI,
    LEGEND_CHARS,
    MARGINS,
    MEDIA_TYPES,
    SIZE,
    chart_classes,
    chart_text,
    decorate_axes,
    draw_series,
)
from api.problem_details import problem, problem_responses, problem_schema
from api.query_values import invalid
from application.access import Principal
from application.improvement.report import Report, progress_control, recorded_control
from application.improvement.trend import Trend, weekly
from domain.improvement.improvement import Improvement
from infra.composition_root import Container
from projections.kpi.kpi_periods import KpiQueryError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

router = APIRouter(
    prefix="/v1/improvements",
    tags=["improvements"],
    responses=problem_responses(401, 403, 404, 406, 422, 503),
)
Reader = Annotated[Principal, Depends(require(*READERS))]
TEMPLATES = Path(__file__).parent / "templates"
HTML = "text/html; charset=utf-8"
PDF = "application/pdf"
JSON = "application/json"
WEEK_S = 7 * 86400.0
MAX_PANELS = 6  # one panel per goal KPI; more would not fit a page
SHADES = {"baseline": "#9e9e9e", "review": "#66bb6a"}
MARKS = {
    "approved": "#1565c0",
    "implementation started": "#6a1b9a",
    "implementation completed": "#ef6c00",
}
Accept = Annotated[str | None, Header(description="Chooses the format when `format` is absent")]


# -- the documents ------------------------------------------------------------------------------


class GoalTrend(BaseModel):
    goal_id: str
    kpi: str
    values: list[int | float | None]
    counts: list[int]
    baseline: dict[str, str]
    review: dict[str, str]


class MilestonePublic(BaseModel):
    kind: str
    at: str


class TrendPublic(BaseModel):
    """The figures behind the trend chart: per goal, one value per week (`weeks`: their
    Mondays, UTC)."""

    improvement_id: str
    number: str
    weeks: list[str]
    start: str | None
    end: str | None
    goals: list[GoalTrend]
    milestones: list[MilestonePublic]


def _content(
    *types: str, json_model: type[BaseModel] | None = None
) -> dict[int | str, dict[str, Any]]:
    """The 200 response's media types, for the OpenAPI document."""
    binary = {"image/png", PDF}
    content: dict[str, Any] = {
        t: {"schema": {"type": "string", **({"format": "binary"} if t in binary else {})}}
        for t in types
    }
    if json_model is not None:
        content[JSON] = {"schema": problem_schema(json_model)}
    return {200: {"content": content}}


# -- negotiation --------------------------------------------------------------------------------


def _negotiate(asked: str | None, accept: str | None, offered: Mapping[str, str]) -> str | None:
    """The format: `format` if given; else the Accept header's most wanted offered media
    type (`offered`: media type -> format, the default first); None: nothing acceptable."""
    if asked is not None:
        return asked
    default = next(iter(offered.values()))
    if not accept:
        return default
    for media in _ranges(accept):
        if media == "*/*":
            return default
        kind = media.removesuffix("/*") + "/" if media.endswith("/*") else None
        for offer, fmt in offered.items():
            if offer == media or (kind and offer.startswith(kind)):
                return fmt
    return None


def _ranges(accept: str) -> list[str]:
    """The media ranges of an Accept header, most wanted first (q=0: not wanted)."""
    ranked = []
    for position, part in enumerate(accept.split(",")):
        media, *params = [p.strip() for p in part.split(";")]
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media and quality > 0 and math.isfinite(quality):
            ranked.append((-quality, position, media.lower()))
    return [media for _, _, media in sorted(ranked)]


def _not_acceptable(request: Request, offered: Mapping[str, str]) -> Response:
    listed = ", ".join(offered)
    return problem(
        request,
        406,
        f"this resource is available as {listed}; ask with `format` or an Accept header"
        " naming one of them",
        kind="not-acceptable",
    )


# -- the trend ----------------------------------------------------------------------------------

TREND_TYPES = {"image/svg+xml": "svg", "image/png": "png", JSON: "json"}
TrendFormat = Annotated[
    Literal["svg", "png", "json"] | None,
    Query(
        alias="format",
        description="`svg` (image/svg+xml), `png` (image/png) or `json` (the figures);"
        " without it, the Accept header chooses (default svg)",
    ),
]


# A sync `def`: FastAPI runs it in its thread pool, so rendering does not hold up the loop.
@router.get(
    "/{improvement_id}/trend",
    operation_id="get_improvement_trend",
    summary="The goal KPIs week by week: SVG, PNG or JSON",
    response_class=Response,
    responses=_content("image/svg+xml", "image/png", json_model=TrendPublic),
)
def get_improvement_trend(
    improvement_id: UUID,
    request: Request,
    container: ContainerDep,
    _: Reader,
    answer: TrendFormat = None,
    accept: Accept = None,
) -> Response:
    """Each goal's KPI over the improvement's scope per ISO week (UTC), from the earliest
    baseline start to now (or the latest review end, if earlier): the figure
    `GET /v1/kpis?period=week` gives for each week. The chart shades the baseline and review
    periods and marks approval, start and completion of the implementation."""
    chosen = _negotiate(answer, accept, TREND_TYPES)
    if chosen is None:
        return _not_acceptable(request, TREND_TYPES)
    improvement = _improvement(container, improvement_id)
    trend = _trend(container, improvement)
    if chosen == "json":
        document = TrendPublic(
            improvement_id=str(improvement_id), number=improvement.number, **trend.plain()
        )
        return Response(document.model_dump_json(), media_type=JSON)
    image = trend_chart(trend, _title(improvement), "png" if chosen == "png" else "svg")
    return Response(image, media_type=MEDIA_TYPES[chosen])


def _improvement(container: Container, improvement_id: UUID) -> Improvement:
    found: Improvement = container.desk.get(improvement_id, practice="improvement")
    return found


def _trend(container: Container, improvement: Improvement) -> Trend:
    events = container.published_events(str(improvement.id))
    try:
        return weekly(container.read_db, improvement.goals, improvement.design["scope"], events)
    except KpiQueryError as error:
        raise invalid("goals", str(error)) from None


def _title(improvement: Improvement) -> str:
    return f"{improvement.number}: goal KPIs per week (UTC)"


def trend_chart(trend: Trend, title: str, image: Literal["svg", "png"]) -> bytes:
    """One panel per goal KPI (its goals' lines), periods shaded, milestones marked."""
    figure_class, canvas_class = chart_classes()
    kpis = list(dict.fromkeys(s.kpi for s in trend.series))[:MAX_PANELS] or [""]
    height = SIZE[1] * len(kpis)
    figure = figure_class(figsize=(SIZE[0], height), dpi=DPI)
    figure.subplots_adjust(**_margins(height), hspace=0.55)
    canvas_class(figure)
    labels = [week.label for week in trend.weeks]
    for index, kpi in enumerate(kpis):
        axes = figure.add_subplot(len(kpis), 1, index + 1)
        _panel(axes, trend, kpi)
        decorate_axes(axes, chart_text(title) if index == 0 else "", labels, kpi)
    output = io.BytesIO()
    figure.savefig(output, format=image)
    return output.getvalue()


def _margins(height: float) -> dict[str, float]:
    """The KPI chart's margins, kept in inches however many panels stack up."""
    scale = SIZE[1] / height
    return {
        **MARGINS,
        "top": 1 - (1 - MARGINS["top"]) * scale,
        "bottom": MARGINS["bottom"] * scale,
    }


def _panel(axes: "Axes", trend: Trend, kpi: str) -> None:
    """The panel's goals as lines, then the shading and marks; one legend for all."""
    series = {s.goal_id: s.values for s in trend.series if s.kpi == kpi}
    draw_series(axes, series)
    lines = list(axes.get_lines())
    names = [chart_text(name)[:LEGEND_CHARS] for name in series]
    extras = [*_shade(axes, trend, kpi), *_mark(axes, trend)]
    axes.legend(
        [*lines, *(handle for handle, _ in extras)],
        [*names, *(label for _, label in extras)],
        loc="upper left",
        bbox_to_anchor=(1.02, 1),
        fontsize="small",
    )


def _x(trend: Trend, moment: datetime) -> float:
    """A moment on the x axis: week i is drawn from i - 0.5 to i + 0.5."""
    return (moment.timestamp() - trend.weeks[0].t0) / WEEK_S - 0.5


def _shade(axes: "Axes", trend: Trend, kpi: str) -> list[tuple[Any, str]]:
    """The baseline and review periods of the panel's goals; one legend entry each."""
    if not trend.weeks:
        return []
    drawn: dict[str, Any] = {}
    seen: set[tuple[str, datetime, datetime]] = set()
    for goal in trend.goals:
        if goal["kpi"] != kpi:
            continue
        for name, period in (("baseline", goal["baseline"]), ("review", goal["review"])):
            key = (name, period["start"], period["end"])
            if key in seen:
                continue
            seen.add(key)
            left, right = _x(trend, period["start"]), _x(trend, period["end"])
            patch = axes.axvspan(left, right, color=SHADES[name], alpha=0.15, linewidth=0)
            drawn.setdefault(name, patch)
    return [(patch, f"{name} period") for name, patch in drawn.items()]


def _mark(axes: "Axes", trend: Trend) -> list[tuple[Any, str]]:
    """A dashed line at each milestone within the weeks; one legend entry per kind."""
    if not trend.weeks:
        return []
    first, last = trend.weeks[0].start, trend.weeks[-1].end
    drawn: dict[str, Any] = {}
    for milestone in trend.milestones:
        if first <= milestone.at < last:
            line = axes.axvline(
                _x(trend, milestone.at), color=MARKS[milestone.kind], linestyle="--", linewidth=1
            )
            drawn.setdefault(milestone.kind, line)
    return [(line, kind) for kind, line in drawn.items()]


# -- the report ---------------------------------------------------------------------------------

REPORT_TYPES = {"text/html": "html", PDF: "pdf"}
ReportFormat = Annotated[
    Literal["html", "pdf"] | None,
    Query(
        alias="format",
        description="`html` (text/html) or `pdf` (application/pdf); without it, the Accept"
        " header chooses (default html)",
    ),
]


@router.get(
    "/{improvement_id}/report",
    operation_id="get_improvement_report",
    summary="The improvement report: HTML, or PDF",
    response_class=Response,
    responses=_content("text/html", PDF),
)
def get_improvement_report(
    improvement_id: UUID,
    request: Request,
    container: ContainerDep,
    _: Reader,
    answer: ReportFormat = None,
    accept: Accept = None,
) -> Response:
    """Basic information, motivation, inputs, goals, plan and its execution, RACI, the
    control table of the latest recorded verification (or, without one, a progress view
    computed now and marked as not recorded), the trend chart, cause analyses and verdict."""
    chosen = _negotiate(answer, accept, REPORT_TYPES)
    if chosen is None:
        return _not_acceptable(request, REPORT_TYPES)
    improvement = _improvement(container, improvement_id)
    report = _report(container, improvement, svg=chosen == "html")
    if chosen == "pdf":
        return Response(render_pdf(report), media_type=PDF, headers=_attachment(improvement))
    return HTMLResponse(render_html(report), media_type=HTML)


def _report(container: Container, improvement: Improvement, svg: bool) -> Report:
    control = recorded_control(improvement)
    if control is None and improvement.goals:
        control = progress_control(container.verification(), improvement)
    trend = _trend(container, improvement)
    chart = trend_chart(trend, _title(improvement), "svg" if svg else "png")
    extra = {"chart_png_uri": "" if svg else _data_uri(chart), "chart_width": 180}
    return Report(
        improvement,
        control,
        trend.milestones,
        chart_svg=_inline(chart) if svg else "",
        generated_at=datetime.now(UTC),
        extra=extra,
    )


def _inline(svg: bytes) -> str:
    """The chart's <svg> element alone, without the XML declaration and doctype."""
    text = svg.decode()
    return text[text.index("<svg") :]


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _attachment(improvement: Improvement) -> dict[str, str]:
    # The number is ours (CSI and digits): safe in a header as it is.
    return {"Content-Disposition": f'inline; filename="{improvement.number}-report.pdf"'}


@lru_cache(maxsize=1)
def _templates() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,  # every free text is user input
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(figure=_figure, when=_when, period=_period)
    return environment


def render_html(report: Report, pdf: bool = False) -> str:
    template = _templates().get_template("improvement_report.html.j2")
    return template.render(**report.context(), pdf=pdf)


def _figure(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "-"


def _period(period: Mapping[str, datetime]) -> str:
    return f"{_when(period['start'])} to {_when(period['end'])}"


# -- PDF ----------------------------------------------------------------------------------------


def render_pdf(report: Report) -> bytes:
    """The report's template drawn by fpdf2 (its HTML subset: tables, lists, headings)."""
    from fpdf import FPDF  # imported on the first PDF, not at start-up

    pdf = FPDF(format="A4")
    _fonts(pdf)
    pdf.set_font("DejaVu", size=9)
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    pdf.write_html(render_html(report, pdf=True))
    return bytes(pdf.output())


def _fonts(pdf: Any) -> None:
    """matplotlib's DejaVu fonts: Unicode text without a system font package."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    styles = {"": "", "B": "-Bold", "I": "-Oblique", "BI": "-BoldOblique"}
    for style, suffix in styles.items():
        pdf.add_font("DejaVu", style, str(folder / f"DejaVuSans{suffix}.ttf"))
