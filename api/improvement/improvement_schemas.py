"""Request and response bodies of the continual improvement register.

The shapes are checked here, so a malformed body never reaches the aggregate; the domain
(domain/improvement/design.py) still checks every value and names the field it refuses,
and the aggregate enforces the lifecycle.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, Strict

from domain.improvement.design import (
    KPI_NAMES,
    ActionKind,
    Direction,
    ImprovementArea,
    InputKind,
    PartyKind,
    RaciRole,
    TargetKind,
)

Text = Annotated[str, Field(max_length=4000)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Reason = Annotated[str, Field(min_length=1, max_length=4000)]
Short = Annotated[str, Field(max_length=200)]
Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]
KPI_DESCRIPTION = "A KPI of GET /v1/kpis: " + ", ".join(KPI_NAMES)
TicketType = Literal["incident", "problem", "change", "request", "improvement"]
Verdict = Literal["successful", "partly_successful", "unsuccessful"]


class Request(BaseModel):
    # Unknown fields are refused: a misspelt field would otherwise be silently ignored.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ImprovementScope(Request):
    """A filter over tickets; each list empty (or left out) means any."""

    services: list[Name] = []
    categories: list[Name] = []
    groups: list[Name] = []
    priorities: list[Literal["P1", "P2", "P3", "P4"]] = []
    ticket_types: list[TicketType] = []
    channels: list[Name] = []


class TicketRef(Request):
    type: TicketType
    ref: Name = Field(description="The ticket's id or number")


class ImprovementInput(Request):
    """What triggered the improvement; a `kpi_trend` names the KPI that trends."""

    kind: InputKind
    note: Text = ""
    kpi: str | None = Field(None, max_length=200, description=KPI_DESCRIPTION)
    kpi_scope: ImprovementScope | None = None
    tickets: list[TicketRef] = []


class Budget(Request):
    amount: Number = Field(ge=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217: EUR, USD")


class ImprovementDesign(Request):
    """An improvement's design: only `name` and `area` are required to propose one."""

    name: Name
    area: ImprovementArea
    owner: Short = ""
    team: list[Name] = []
    services: list[Name] = []
    processes: list[Name] = []
    motivation: Text = ""
    scope: ImprovementScope | None = None
    planned_start: date | None = None
    planned_end: date | None = None
    expected_outcome: Text = ""
    budget: Budget | None = None
    resources: Text = ""
    inputs: list[ImprovementInput] = []


class Target(Request):
    kind: TargetKind = Field(
        description="absolute: the KPI value to reach; relative: a change from the baseline "
        "as a fraction of it (0.2 = 20 %)"
    )
    value: Number


class Period(Request):
    """[start, end): start included, end not."""

    start: AwareDatetime
    end: AwareDatetime


class Goal(Request):
    id: Name
    kpi: str = Field(max_length=200, description=KPI_DESCRIPTION)
    direction: Direction
    target: Target
    baseline: Period
    review: Period = Field(description="Starts at or after the end of the baseline")


class GoalsRevision(Request):
    goals: list[Goal] = Field(min_length=1)


class PlannedAction(Request):
    id: Name
    title: Name
    owner: Name
    due: date
    kind: ActionKind = ActionKind.TASK


class RaciEntry(Request):
    party: Name
    kind: PartyKind = PartyKind.PERSON
    role: RaciRole


class PlanRevision(Request):
    """The actions (their progress is kept by id) and who is responsible, accountable,
    consulted and informed; approval needs a knowledge hand-over due last and one
    accountable party."""

    actions: list[PlannedAction] = []
    raci: list[RaciEntry] = []


class AcceptRequest(Request):
    note: Text = ""


class DeclineRequest(Request):
    reason: Reason


class NoBody(Request):
    pass


class ApproveRequest(Request):
    plan_version: int = Field(
        ge=0, le=10**9, strict=True, description="The plan version reviewed (`plan_version`)"
    )
    note: Text = ""


class HoldRequest(Request):
    reason: Reason


class CompleteActionRequest(Request):
    action_id: Name
    note: Text = ""


class DropActionRequest(Request):
    action_id: Name
    reason: Reason


class CauseAnalysisRequest(Request):
    goal_id: Name = Field(description="An unmet goal of the latest verification")
    cause: Reason
    follow_up_measures: list[Name] = []
    follow_up_improvement: Name | None = Field(
        None, description="The id or number of the improvement it starts"
    )


class CloseRequest(Request):
    verdict: Verdict = Field(description="At most as kind as the verification's figures")
    summary: Text = ""


class WithdrawRequest(Request):
    reason: Reason


# One example per request body, shown in the OpenAPI document.
_PERIODS = {
    "baseline": {"start": "2026-01-01T00:00:00Z", "end": "2026-04-01T00:00:00Z"},
    "review": {"start": "2026-07-01T00:00:00Z", "end": "2026-10-01T00:00:00Z"},
}
EXAMPLES: dict[type[Request], dict[str, Any]] = {
    ImprovementDesign: {
        "name": "Faster first response on the service desk",
        "area": "process",
        "owner": "carol",
        "motivation": "MTTA doubled since the reorganisation",
    },
    GoalsRevision: {
        "goals": [
            {
                "id": "mtta",
                "kpi": "mtta_hours",
                "direction": "decrease",
                "target": {"kind": "relative", "value": 0.2},
                **_PERIODS,
            }
        ]
    },
    PlanRevision: {
        "actions": [
            {"id": "a1", "title": "New triage rota", "owner": "carol", "due": "2026-05-01"},
            {
                "id": "kb",
                "title": "Write up the rota",
                "owner": "carol",
                "due": "2026-06-01",
                "kind": "knowledge_handover",
            },
        ],
        "raci": [{"party": "carol", "role": "accountable"}],
    },
    AcceptRequest: {"note": "worth doing"},
    DeclineRequest: {"reason": "covered by another improvement"},
    ApproveRequest: {"plan_version": 3},
    HoldRequest: {"reason": "waiting for the new tool"},
    CompleteActionRequest: {"action_id": "a1"},
    DropActionRequest: {"action_id": "a1", "reason": "no longer needed"},
    CauseAnalysisRequest: {"goal_id": "mtta", "cause": "staffing gap in the holidays"},
    CloseRequest: {"verdict": "successful", "summary": "MTTA down 25 %"},
    WithdrawRequest: {"reason": "superseded"},
}
for _model, _example in EXAMPLES.items():
    _model.model_config["json_schema_extra"] = {"examples": [_example]}
    _model.model_rebuild(force=True)


class ImprovementSummary(BaseModel):
    """What a command answers: the improvement's identity, state and versions."""

    id: str
    number: str
    state: str
    outcome: str | None = None
    plan_version: int
    version: int


class ImprovementPublic(BaseModel):
    """One improvement as the event store has it now."""

    id: str
    number: str
    state: str
    outcome: str | None = None
    design: dict[str, Any]
    goals: list[dict[str, Any]]
    plan: dict[str, Any]
    plan_version: int
    approved_version: int | None = None
    approved_by: str | None = None
    approved_at: str | None = None
    hold_reason: str | None = None
    reason: str | None = None
    verification: dict[str, Any] | None = None
    cause_analyses: dict[str, dict[str, Any]]
    summary: str | None = None
    proposed_by: str
    proposed_at: str
    closed_at: str | None = None
    updated_at: str
    version: int


class ImprovementAsOf(ImprovementPublic):
    """The improvement replayed from the event store as it stood at `as_of`: the same
    document, folded from the events up to then (times as fixed-width UTC text)."""

    as_of: str


class ImprovementEntry(BaseModel):
    """One row of the register read model: what a list shows and filters by."""

    id: str
    number: str
    name: str
    state: str
    outcome: str | None = Field(description="How it closed; null while open")
    owner: str | None = Field(description="The improvement owner; null until one is named")
    services: list[str]
    area: str
    planned_start: str | None
    planned_end: str | None
    review_date: str | None = Field(description="When the last goal's review period ends")
    goals: int = Field(description="How many goals it has")
    open_actions: int = Field(description="Plan actions neither done nor dropped")
    plan_version: int
    proposed_at: str
    updated_at: str
    closed_at: str | None
    version: int
    position: int = Field(description="The event store log position of its latest event")


class ImprovementPage(BaseModel):
    total: int = Field(description="Improvements matching the filters")
    limit: int
    next: str | None = Field(description="The `cursor` of the following page; null: the last")
    items: list[ImprovementEntry]


class RegisterEntry(BaseModel):
    """A line of the continual improvement register."""

    id: str
    number: str
    name: str
    state: str
    owner: str | None
    outcome: str | None


class VerifyRequest(Request):
    """A verification now: a progress view, or with `record` the one the review rests on."""

    comparison_scope: ImprovementScope | None = Field(
        default=None,
        description="The scope shown beside the improvement's (default: the whole desk)",
    )
    record: bool = Field(default=False, description="Record it (in review only); If-Match applies")


class FigurePublic(BaseModel):
    value: int | float | None = Field(description="None: nothing to measure in the period")
    count: int = Field(description="The tickets (or answers) behind the value")


class ComparisonPublic(BaseModel):
    baseline: FigurePublic
    review: FigurePublic


class ControlRowPublic(BaseModel):
    goal_id: str
    kpi: str
    direction: str
    target: int | float | None
    baseline: FigurePublic
    review: FigurePublic
    comparison: ComparisonPublic | None = None
    met: bool
    warnings: list[str] = Field(default_factory=list)


Pin = str | int | float | bool | None


class VerificationPublic(BaseModel):
    """The control table, computed from the history at the pinned log position."""

    improvement_id: str
    recorded: bool = Field(description="Whether it was recorded as the improvement's")
    verification: int | None = Field(description="Its number, if recorded")
    version: int = Field(description="The improvement's version after it")
    pinned: dict[str, Pin]
    control_table: list[ControlRowPublic]


class ReproductionPublic(BaseModel):
    """The latest recorded verification, computed again from its pinned inputs."""

    improvement_id: str
    verification: int
    pinned: dict[str, Pin]
    recorded: list[ControlRowPublic]
    recomputed: list[ControlRowPublic]
    identical: bool
