"""An SLA policy as HTTP and the CLI send it: durations in ISO 8601 or seconds."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from domain.incident.lifecycle import HoldReason
from domain.shared_kernel.value_checks import LONGEST_DURATION

Duration = Annotated[timedelta, Field(description='ISO-8601 duration ("PT4H") or seconds')]


PriorityKey = Literal["P1", "P2", "P3", "P4", "*"]


Targets = dict[PriorityKey, Duration]


_DURATION = TypeAdapter(timedelta)


def parse_duration(text: str) -> timedelta:
    """ISO-8601 duration or seconds, positive and at most the domain's longest duration;
    ValueError otherwise."""
    value = _DURATION.validate_python(text)
    if not timedelta(0) < value <= LONGEST_DURATION:
        raise ValueError(f"a duration must be positive and at most {LONGEST_DURATION.days} days")
    return value


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Conditions(_Body):
    """A ticket matches when, for every condition given, its value is one of those listed."""

    ticket_type: list[Literal["incident"]] = []
    priority: list[Literal["P1", "P2", "P3", "P4"]] = []
    service: list[str] = []
    category: list[str] = []
    organisation: list[str] = Field(default=[], description="the caller's organisation")


class MetricTargets(_Body):
    respond: Targets | None = Field(default=None, description="time to acknowledgement")
    resolve: Targets | None = None


class PauseRules(_Body):
    """Which hold reasons stop which clock."""

    respond: list[HoldReason] = []
    resolve: list[HoldReason] = [HoldReason.AWAITING_CALLER, HoldReason.AWAITING_VENDOR]
    ola: list[HoldReason] = [HoldReason.AWAITING_CALLER, HoldReason.AWAITING_VENDOR]


class PolicyCreate(_Body):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=4000)
    rank: int = Field(0, description="breaks ties between equally specific policies; higher wins")
    active: bool = True
    conditions: Conditions = Conditions()
    targets: MetricTargets = MetricTargets()
    ola: dict[str, Targets] = Field({}, description="per assignment group: how long it may hold")
    calendar: dict[str, Any] | None = Field(
        None, description="BusinessCalendar.to_dict(); null = 24x7"
    )
    pause: PauseRules = PauseRules()
    warnings: list[float] = Field([50, 75, 90], description="percentages of the target")


class PolicyPatch(_Body):
    """Only the fields given change; the others keep their current value."""

    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=4000)
    rank: int | None = None
    active: bool | None = None
    conditions: Conditions | None = None
    targets: MetricTargets | None = None
    ola: dict[str, Targets] | None = None
    calendar: dict[str, Any] | None = None
    pause: PauseRules | None = None
    warnings: list[float] | None = None


def _seconds(targets: Mapping[PriorityKey, timedelta]) -> dict[str, float]:
    return {key: value.total_seconds() for key, value in targets.items()}


def to_spec(body: PolicyCreate | PolicyPatch) -> dict[str, Any]:
    """The domain spec (durations in seconds); a patch gives only the fields it sets."""
    fields = (
        body.model_fields_set if isinstance(body, PolicyPatch) else set(type(body).model_fields)
    )
    return {name: _spec_value(name, getattr(body, name)) for name in fields}


def _spec_value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name == "targets":
        return _metric_seconds(value)
    if name == "ola":
        return {group: _seconds(targets) for group, targets in value.items()}
    if name in ("conditions", "pause"):
        return value.model_dump(mode="json")
    return value


def _metric_seconds(targets: MetricTargets) -> dict[str, dict[str, float]]:
    given = {"respond": targets.respond, "resolve": targets.resolve}
    return {metric: _seconds(value) for metric, value in given.items() if value is not None}


def draft_spec(data: dict[str, Any]) -> dict[str, Any]:
    """A draft policy from plain JSON (a CLI file), validated like a create body."""
    return to_spec(PolicyCreate.model_validate(data))
