"""Response models of /v1/kpis."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_ROWS = 10_000
Period = Literal["day", "week", "month"]
Dimension = Literal["group", "category", "priority", "service", "agent"]


class KpiRow(BaseModel):
    """One period (and one value of the group_by dimension). docs/kpis.md defines each KPI."""

    model_config = ConfigDict(extra="allow")  # the dimension's own column: group, agent...

    period: str = Field(description="Label: YYYY-MM-DD (day, week from Monday) or YYYY-MM")
    period_start: str
    period_end: str
    opened: int
    acknowledged: int
    resolved: int = Field(description="Incidents first resolved in the period")
    closed: int
    cancelled: int
    backlog: int = Field(description="Incidents in new, in progress or on hold at period end")
    backlog_rate: float | None = Field(description="backlog / opened in the period")
    mtta_hours: float | None
    ttr_mean_hours: float | None
    ttr_median_hours: float | None
    ttr_p90_hours: float | None
    ttr_business_mean_hours: float | None
    fcr_rate: float | None
    reopen_rate: float | None
    reassignments_per_incident: float | None
    sla_compliance: float | None
    source_sla_compliance: float | None
    csat_mean: float | None
    csat_responses: int
    nps: float | None
    mean_hours_in_new: float | None
    mean_hours_in_in_progress: float | None
    mean_hours_in_on_hold: float | None
    mean_hours_in_resolved: float | None


class StateStep(BaseModel):
    state: str
    hold_reason: str | None
    total_hours: float | None
    stints: int = Field(
        description="Times incidents were in the step in the range: in it at the start, or"
        " entering it"
    )
    mean_hours: float | None = Field(description="Hours per stint")


class KpiReport(BaseModel):
    period: Period
    group_by: Dimension | None
    timezone: str
    start: str | None
    end: str | None
    rows: list[KpiRow] = Field(description="This page's rows, oldest period first")
    limit: int = Field(description="Rows per page")
    next: str | None = Field(description="The `cursor` of the next page; null on the last")
    steps: list[StateStep] = Field(
        description="Time spent per state over the whole range, slowest first"
    )
