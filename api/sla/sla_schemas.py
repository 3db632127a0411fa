"""Request and response bodies of the SLA API.

Durations are ISO-8601 (`"PT4H"`, `"P3D"`) or a number of seconds; they are stored in
seconds. A target map is keyed by priority P1..P4, or "*" for the priorities not listed.
Here a duration is positive and at most 366 days (`LONGEST_DURATION`) before anything else
runs; the domain decides the rest (domain/sla/sla_policy.py: due within 732 days on the
policy's calendar) and refuses it with a 422. A policy names at least one target.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    WithJsonSchema,
    model_validator,
)

from api.query_values import DURATION_PATTERN
from application.sla.policy_document import (
    Conditions,
    MetricTargets,
    PauseRules,
    PolicyCreate,
    PolicyPatch,
    PriorityKey,
    _Body,
)
from domain.shared_kernel.value_checks import LONGEST_DURATION, TIMES_BEFORE, TIMES_FROM


def _not_text_number(value: object) -> object:
    """A duration is ISO 8601 text or a JSON number of seconds: not "3600", not true."""
    if isinstance(value, bool) or (isinstance(value, str) and not value.startswith("P")):
        raise ValueError('a duration is ISO 8601 text ("PT4H") or a number of seconds')
    return value


def _bounded(value: timedelta) -> timedelta:
    if not timedelta(0) < value <= LONGEST_DURATION:
        raise ValueError(f"a duration must be positive and at most {LONGEST_DURATION.days} days")
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(_not_text_number),
    AfterValidator(_bounded),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "duration", "pattern": DURATION_PATTERN},
                {"type": "number", "exclusiveMinimum": 0, "maximum": 31_622_400},
            ],
            "description": 'ISO 8601 duration ("PT4H") or seconds; positive, at most 366 days',
        }
    ),
]
Targets = Annotated[dict[PriorityKey, Duration], Field(min_length=1)]
StrictInt = Annotated[int, Strict()]
StrictBool = Annotated[bool, Strict()]


def _number_only(value: object) -> object:
    if isinstance(value, (bool, str)):
        raise ValueError(f"must be a JSON number, not {value!r}")
    return value


Percent = Annotated[float, BeforeValidator(_number_only), Field(gt=0, lt=100, allow_inf_nan=False)]


class ApiMetricTargets(MetricTargets):
    respond: Targets | None = Field(default=None, description="time to acknowledgement")
    resolve: Targets | None = None


_POLICY_EXAMPLE: dict[str, Any] = {
    "name": "Gold",
    "conditions": {"service": ["email"]},
    "targets": {"respond": {"P1": "PT15M", "*": "PT4H"}, "resolve": {"P1": "PT4H", "*": "P3D"}},
}


_SOME_TARGET: list[dict[str, Any]] = [
    {"required": ["targets"], "properties": {"targets": {"minProperties": 1}}},
    {"required": ["ola"], "properties": {"ola": {"minProperties": 1}}},
]

_CREATE_EXTRA: dict[str, Any] = {"examples": [_POLICY_EXAMPLE], "anyOf": _SOME_TARGET}


class ApiPolicyCreate(PolicyCreate):
    """A whole policy: at least one target (respond, resolve or an OLA)."""

    model_config = ConfigDict(json_schema_extra=_CREATE_EXTRA)

    rank: StrictInt = Field(0, description="breaks ties between equally specific policies")
    active: StrictBool = True
    conditions: Conditions = Conditions()
    targets: ApiMetricTargets = ApiMetricTargets()
    ola: dict[str, Targets] = Field({}, description="per assignment group: how long it may hold")
    pause: PauseRules = PauseRules()
    warnings: list[Percent] = Field([50, 75, 90], description="percentages of the target")

    @model_validator(mode="after")
    def _some_target(self) -> ApiPolicyCreate:
        if not (self.targets.respond or self.targets.resolve or self.ola):
            raise ValueError(
                "a policy needs at least one target: targets.respond, targets.resolve or ola"
            )
        return self


class ApiPolicyPatch(PolicyPatch):
    """Only the fields given change; the others keep their current value."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"active": False}]})

    rank: StrictInt | None = None
    active: StrictBool | None = None
    targets: ApiMetricTargets | None = None
    ola: dict[str, Targets] | None = None
    warnings: list[Percent] | None = None


def _in_range(value: datetime) -> datetime:
    if not TIMES_FROM <= value < TIMES_BEFORE:
        raise ValueError(f"times run from {TIMES_FROM.date()} up to {TIMES_BEFORE.date()}")
    return value


def _text_only(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("must be ISO 8601 text with an offset, not a number")
    return value


Moment = Annotated[AwareDatetime, BeforeValidator(_text_only), AfterValidator(_in_range)]


class SimulationRequest(_Body):
    draft: ApiPolicyCreate
    start: Moment = Field(alias="from")
    end: Moment = Field(alias="to")
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "draft": _POLICY_EXAMPLE,
                    "from": "2026-01-01T00:00:00Z",
                    "to": "2026-02-01T00:00:00Z",
                }
            ]
        },
    )


class PolicyVersion(BaseModel):
    version: int
    effective_from: datetime
    actor: dict[str, str]
    causation_id: str
    spec: dict[str, Any]


class PolicyOut(BaseModel):
    id: str
    version: int
    name: str
    active: bool
    rank: int
    spec: dict[str, Any] = Field(description="the current specification, durations in seconds")
    versions: list[PolicyVersion] | None = None


class Clock(BaseModel):
    """One SLA clock as of the answer's `as_of`."""

    ticket_id: str
    number: str | None = None
    metric: str = Field(description="respond, resolve or ola")
    group: str | None = None
    policy_id: str
    policy_version: int
    priority: str | None = None
    target_seconds: float
    started_at: str | None = None
    elapsed_seconds: float
    paused_seconds: float
    remaining_seconds: float
    due_at: str | None = None
    state: str
    running: bool
    breached_at: str | None = None
    overrun_seconds: float
    stopped_at: str | None = None
    warnings_recorded: list[Any]
    breach_recorded: bool


class IncidentClocks(BaseModel):
    incident_id: str
    as_of: str
    clocks: list[Clock]


class AtRisk(BaseModel):
    as_of: str
    within_seconds: float
    items: list[Clock]


class Breaches(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    start: str = Field(alias="from")
    end: str = Field(alias="to")
    items: list[Clock]


class Compliance(BaseModel):
    metric: str
    key: str
    met: int
    breached: int
    compliance_percent: float


class ComplianceReport(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    start: str = Field(alias="from")
    end: str = Field(alias="to")
    by: str
    period: str | None
    items: list[Compliance]


class Outcome(BaseModel):
    met: int
    breached: int
    compliance_percent: float


class SideBySide(BaseModel):
    metric: str
    key: str
    draft: Outcome | None
    actual: Outcome | None


class Simulation(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    start: str = Field(alias="from")
    end: str = Field(alias="to")
    events_replayed: int
    by_priority: list[SideBySide]
    by_group: list[SideBySide]
    overall: list[SideBySide]
