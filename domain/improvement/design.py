"""What an improvement is about and how it is judged: its design, goals, plan and control
table, as the plain data its events carry.

Every value is checked and normalised here, naming the field refused (`InvalidValue`):
events are replayed by read models for ever, so they record only normalised data. Dates
are ISO text (YYYY-MM-DD) and sequences are lists, never tuples: the store's transcoder
writes both as JSON, and a round trip must give back the very same value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, TypedDict

from domain.shared_kernel.errors import InvalidValue
from domain.shared_kernel.value_checks import (
    TIMES_BEFORE,
    TIMES_FROM,
    check_integer,
    check_text,
    check_time,
    parse_choice,
)

# The KPIs of GET /v1/kpis (KPI_FIELDS of projections/kpi/kpi_queries.py), copied: the
# domain imports nothing from the read models. tests/unit/test_improvement_design.py keeps
# the two in step.
KPI_NAMES: tuple[str, ...] = (
    "opened",
    "acknowledged",
    "resolved",
    "closed",
    "cancelled",
    "backlog",
    "backlog_rate",
    "mtta_hours",
    "ttr_mean_hours",
    "ttr_median_hours",
    "ttr_p90_hours",
    "ttr_business_mean_hours",
    "fcr_rate",
    "reopen_rate",
    "reassignments_per_incident",
    "sla_compliance",
    "source_sla_compliance",
    "csat_mean",
    "csat_responses",
    "nps",
    "mean_hours_in_new",
    "mean_hours_in_in_progress",
    "mean_hours_in_on_hold",
    "mean_hours_in_resolved",
)
PRIORITIES = ("P1", "P2", "P3", "P4")
# The practices whose tickets an improvement may concern, now or once they exist.
TICKET_TYPES = ("incident", "problem", "change", "request", "improvement")


class ImprovementArea(StrEnum):
    """The four dimensions of service management an improvement works on."""

    PEOPLE = "people"
    RESOURCES = "resources"
    TECHNOLOGY = "technology"
    PROCESS = "process"


class InputKind(StrEnum):
    """What triggered the improvement."""

    KPI_TREND = "kpi_trend"
    SLA_BREACH_PATTERN = "sla_breach_pattern"
    CUSTOMER_FEEDBACK = "customer_feedback"
    COMPLAINT = "complaint"
    AUDIT_FINDING = "audit_finding"
    STAFF_SUGGESTION = "staff_suggestion"
    BUSINESS_CHANGE = "business_change"
    TECHNOLOGY_CHANGE = "technology_change"


class Direction(StrEnum):
    INCREASE = "increase"
    DECREASE = "decrease"


class TargetKind(StrEnum):
    ABSOLUTE = "absolute"  # the KPI's value to reach
    RELATIVE = "relative"  # a change from the baseline, as a fraction of it (0.2 = 20 %)


class ActionKind(StrEnum):
    TASK = "task"
    KNOWLEDGE_HANDOVER = "knowledge_handover"  # what was learnt, handed to knowledge management


class ActionStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    DROPPED = "dropped"


class PartyKind(StrEnum):
    PERSON = "person"
    TEAM = "team"


class RaciRole(StrEnum):
    RESPONSIBLE = "responsible"
    ACCOUNTABLE = "accountable"
    CONSULTED = "consulted"
    INFORMED = "informed"


# -- the shapes recorded ----------------------------------------------------------------------


class Scope(TypedDict):
    """A filter over tickets; each list empty means any."""

    services: list[str]
    categories: list[str]
    groups: list[str]
    priorities: list[str]
    ticket_types: list[str]
    channels: list[str]


class TicketRef(TypedDict):
    type: str  # one of TICKET_TYPES
    ref: str  # its id or number


class Input(TypedDict):
    kind: str
    note: str
    kpi: str | None  # kpi_trend only: the KPI that trends, and where
    kpi_scope: Scope | None
    tickets: list[TicketRef]


class Budget(TypedDict):
    amount: int | float
    currency: str  # ISO 4217


class Design(TypedDict):
    name: str
    owner: str
    team: list[str]
    services: list[str]
    processes: list[str]
    motivation: str
    scope: Scope
    planned_start: str | None  # YYYY-MM-DD
    planned_end: str | None
    expected_outcome: str
    budget: Budget | None
    resources: str
    area: str
    inputs: list[Input]


class Period(TypedDict):
    """[start, end): start included, end not."""

    start: datetime
    end: datetime


class Target(TypedDict):
    kind: str
    value: int | float


class Goal(TypedDict):
    id: str
    kpi: str
    direction: str
    target: Target
    baseline: Period
    review: Period


class Action(TypedDict):
    id: str
    title: str
    owner: str
    due: str  # YYYY-MM-DD
    kind: str
    status: str
    reason: str  # why it was dropped


class RaciEntry(TypedDict):
    party: str
    kind: str
    role: str


class Plan(TypedDict):
    actions: list[Action]
    raci: list[RaciEntry]


class Figure(TypedDict):
    value: int | float | None  # None: no data in the period
    count: int  # the tickets (or responses) behind the value


class Comparison(TypedDict):
    """The same KPI over a comparison scope (the whole desk, say): a trend everybody saw."""

    baseline: Figure
    review: Figure


class ControlRow(TypedDict):
    goal_id: str
    kpi: str
    direction: str
    target: int | float | None  # None: a relative target without a baseline value
    baseline: Figure
    review: Figure
    comparison: Comparison | None
    met: bool


Pinned = dict[str, str | int | float | bool | None]


class Verification(TypedDict):
    """A recorded verification, as the aggregate keeps the latest."""

    number: int
    control_table: list[ControlRow]
    pinned: Pinned
    by: str  # the actor's id
    at: datetime


class CauseAnalysis(TypedDict):
    """Why a goal was not met, and what follows from it."""

    cause: str
    follow_up_measures: list[str]
    follow_up_improvement: str | None  # the id or number of the improvement it started


def empty_plan() -> Plan:
    return {"actions": [], "raci": []}


# -- reading a value, naming where it is ------------------------------------------------------


def _fields(
    where: str, value: object, required: Iterable[str], optional: Iterable[str] = ()
) -> Mapping[str, Any]:
    """`value` as a mapping with all the required fields and no unknown ones."""
    if not isinstance(value, Mapping):
        raise InvalidValue(f"{where} must be an object, not {value!r}")
    required = tuple(required)
    unknown = sorted(str(key) for key in value if key not in {*required, *optional})
    if unknown:
        raise InvalidValue(f"{where} has unknown fields: {', '.join(unknown)}")
    missing = [key for key in required if key not in value]
    if missing:
        raise InvalidValue(f"{where}.{missing[0]} is required")
    return value


def _text(where: str, value: object, required: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidValue(f"{where} must be text, not {value!r}")
    clean = value.strip()
    if required and not clean:
        raise InvalidValue(f"{where} must not be blank")
    return check_text(where, clean)


def _optional_text(where: str, value: object) -> str | None:
    return None if value is None else _text(where, value, required=True)


def _list(where: str, value: object) -> list[Any]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise InvalidValue(f"{where} must be a list, not {value!r}")
    return list(value)


def _one_of(where: str, value: object, allowed: Sequence[str]) -> str:
    text = _text(where, value, required=True)
    if text not in allowed:
        raise InvalidValue(f"{where} must be one of {', '.join(allowed)}, not {text!r}")
    return text


def _texts(where: str, value: object, allowed: Sequence[str] = ()) -> list[str]:
    """Non-blank texts, each once, in their order; one of `allowed` when that is given."""
    items = enumerate(_list(where, value))
    read = (lambda w, v: _one_of(w, v, allowed)) if allowed else _required_text
    return list(dict.fromkeys(read(f"{where}[{i}]", item) for i, item in items))


def _required_text(where: str, value: object) -> str:
    return _text(where, value, required=True)


def _choice(where: str, kind: type[StrEnum], value: object) -> str:
    if not isinstance(value, str):
        raise InvalidValue(f"{where} must be text, not {value!r}")
    return parse_choice(kind, where, value)


def _number(where: str, value: object) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidValue(f"{where} must be a number, not {value!r}")
    if not math.isfinite(value):
        raise InvalidValue(f"{where} must be a finite number, not {value}")
    # Plain int or float: a subclass (an IntEnum, numpy's float64) is not plain JSON data.
    return check_integer(where, int(value)) if isinstance(value, int) else float(value)


def _count(where: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidValue(f"{where} must be a whole number, at least 0, not {value!r}")
    return check_integer(where, value)


def _day(where: str, value: object) -> str:
    """A calendar date as YYYY-MM-DD, given as a date or as that text."""
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            raise InvalidValue(f"{where} must be a date (YYYY-MM-DD), not {value!r}") from None
    if not isinstance(value, date) or isinstance(value, datetime):
        raise InvalidValue(f"{where} must be a date (YYYY-MM-DD), not {value!r}")
    if not TIMES_FROM.date() <= value < TIMES_BEFORE.date():
        raise InvalidValue(f"{where} is out of range: {value.isoformat()}")
    return value.isoformat()


def _moment(where: str, value: object) -> datetime:
    """A timezone-aware datetime, given as one or as ISO 8601 text with an offset, in UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("z", "Z"))
        except ValueError:
            raise InvalidValue(f"{where} must be an ISO 8601 time, not {value!r}") from None
    if not isinstance(value, datetime):
        raise InvalidValue(f"{where} must be a time, not {value!r}")
    # In UTC: the same instant reads back the same from every store and snapshot.
    return check_time(where, value).astimezone(UTC)


def _period(where: str, value: object) -> Period:
    fields = _fields(where, value, ("start", "end"))
    start, end = _moment(f"{where}.start", fields["start"]), _moment(f"{where}.end", fields["end"])
    if end <= start:
        raise InvalidValue(f"{where}.end must be after {where}.start")
    return {"start": start, "end": end}


def _unique(where: str, keys: Sequence[str], what: str) -> None:
    seen: set[str] = set()
    for i, key in enumerate(keys):
        if key in seen:
            raise InvalidValue(f"{where}[{i}].{what} {key!r} is given twice")
        seen.add(key)


# -- the design -------------------------------------------------------------------------------

_SCOPE_FIELDS = ("services", "categories", "groups", "priorities", "ticket_types", "channels")
DESIGN_FIELDS = tuple(Design.__annotations__)


def normalise_scope(where: str, value: object) -> Scope:
    fields = _fields(where, value, (), _SCOPE_FIELDS)
    allowed = {"priorities": PRIORITIES, "ticket_types": TICKET_TYPES}

    def texts(name: str) -> list[str]:
        return _texts(f"{where}.{name}", fields.get(name, []), allowed.get(name, ()))

    return {
        "services": texts("services"),
        "categories": texts("categories"),
        "groups": texts("groups"),
        "priorities": texts("priorities"),
        "ticket_types": texts("ticket_types"),
        "channels": texts("channels"),
    }


def _ticket(where: str, value: object) -> TicketRef:
    fields = _fields(where, value, ("type", "ref"))
    return {
        "type": _one_of(f"{where}.type", fields["type"], TICKET_TYPES),
        "ref": _text(f"{where}.ref", fields["ref"], required=True),
    }


def _input(where: str, value: object) -> Input:
    fields = _fields(where, value, ("kind",), ("note", "kpi", "kpi_scope", "tickets"))
    kind = _choice(f"{where}.kind", InputKind, fields["kind"])
    trend = kind == InputKind.KPI_TREND
    if trend != ("kpi" in fields and fields["kpi"] is not None):
        need = "needs the KPI that trends" if trend else "names a KPI only for a kpi_trend"
        raise InvalidValue(f"{where}.kpi: a {kind} input {need}")
    tickets = _list(f"{where}.tickets", fields.get("tickets", []))
    return {
        "kind": kind,
        "note": _text(f"{where}.note", fields.get("note", "")),
        "kpi": _kpi(f"{where}.kpi", fields["kpi"]) if trend else None,
        "kpi_scope": normalise_scope(f"{where}.kpi_scope", fields.get("kpi_scope", {}))
        if trend
        else None,
        "tickets": [_ticket(f"{where}.tickets[{i}]", t) for i, t in enumerate(tickets)],
    }


def _kpi(where: str, value: object) -> str:
    name = _text(where, value, required=True)
    if name not in KPI_NAMES:
        raise InvalidValue(f"{where} must name a KPI of GET /v1/kpis, not {name!r}")
    return name


def _budget(where: str, value: object) -> Budget | None:
    if value is None:
        return None
    fields = _fields(where, value, ("amount", "currency"))
    amount = _number(f"{where}.amount", fields["amount"])
    if amount < 0:
        raise InvalidValue(f"{where}.amount must not be negative, not {amount}")
    currency = _text(f"{where}.currency", fields["currency"], required=True)
    if len(currency) != 3 or not currency.isascii() or not currency.isupper():
        raise InvalidValue(
            f"{where}.currency must be an ISO 4217 code (EUR, USD), not {currency!r}"
        )
    return {"amount": amount, "currency": currency}


def _optional_day(where: str, value: object) -> str | None:
    return None if value is None else _day(where, value)


def normalise_design(spec: Mapping[str, Any]) -> Design:
    """The whole design, checked; only `name` and `area` are required, the rest default to
    empty (a proposal is often a name and a reason)."""
    d = _fields("design", spec, ("name", "area"), DESIGN_FIELDS)
    start = _optional_day("design.planned_start", d.get("planned_start"))
    end = _optional_day("design.planned_end", d.get("planned_end"))
    if start is not None and end is not None and end < start:
        raise InvalidValue("design.planned_end must not be before design.planned_start")
    inputs = _list("design.inputs", d.get("inputs", []))
    return {
        "name": _text("design.name", d["name"], required=True),
        "owner": _text("design.owner", d.get("owner", "")),
        "team": _texts("design.team", d.get("team", [])),
        "services": _texts("design.services", d.get("services", [])),
        "processes": _texts("design.processes", d.get("processes", [])),
        "motivation": _text("design.motivation", d.get("motivation", "")),
        "scope": normalise_scope("design.scope", d.get("scope", {})),
        "planned_start": start,
        "planned_end": end,
        "expected_outcome": _text("design.expected_outcome", d.get("expected_outcome", "")),
        "budget": _budget("design.budget", d.get("budget")),
        "resources": _text("design.resources", d.get("resources", "")),
        "area": _choice("design.area", ImprovementArea, d["area"]),
        "inputs": [_input(f"design.inputs[{i}]", item) for i, item in enumerate(inputs)],
    }


# -- goals --------------------------------------------------------------------------------------


def _target(where: str, value: object, direction: str) -> Target:
    fields = _fields(where, value, ("kind", "value"))
    kind = _choice(f"{where}.kind", TargetKind, fields["kind"])
    amount = _number(f"{where}.value", fields["value"])
    if kind == TargetKind.RELATIVE and not 0 < amount <= _largest_change(direction):
        limit = "at most 1 (100 %)" if direction == Direction.DECREASE else "finite"
        raise InvalidValue(f"{where}.value: a relative target is a fraction above 0, {limit}")
    return {"kind": kind, "value": amount}


def _largest_change(direction: str) -> float:
    # A decrease by more than the whole baseline would cross zero.
    return 1.0 if direction == Direction.DECREASE else math.inf


def _goal(where: str, value: object) -> Goal:
    g = _fields(where, value, ("id", "kpi", "direction", "target", "baseline", "review"))
    direction = _choice(f"{where}.direction", Direction, g["direction"])
    baseline = _period(f"{where}.baseline", g["baseline"])
    review = _period(f"{where}.review", g["review"])
    if review["start"] < baseline["end"]:
        raise InvalidValue(f"{where}.review must start at or after the end of {where}.baseline")
    return {
        "id": _text(f"{where}.id", g["id"], required=True),
        "kpi": _kpi(f"{where}.kpi", g["kpi"]),
        "direction": direction,
        "target": _target(f"{where}.target", g["target"], direction),
        "baseline": baseline,
        "review": review,
    }


def normalise_goals(goals: object) -> list[Goal]:
    """One or more goals, each id once."""
    items = _list("goals", goals)
    if not items:
        raise InvalidValue("goals must hold at least one goal")
    clean = [_goal(f"goals[{i}]", item) for i, item in enumerate(items)]
    _unique("goals", [g["id"] for g in clean], "id")
    return clean


# -- the plan -----------------------------------------------------------------------------------


def _action(where: str, value: object, recorded: Mapping[str, Action]) -> Action:
    """An action as planned; its progress (status, reason) is kept from the recorded plan,
    since only completing or dropping it changes that."""
    a = _fields(where, value, ("id", "title", "owner", "due"), ("kind",))
    ident = _text(f"{where}.id", a["id"], required=True)
    before = recorded.get(ident)
    return {
        "id": ident,
        "title": _text(f"{where}.title", a["title"], required=True),
        "owner": _text(f"{where}.owner", a["owner"], required=True),
        "due": _day(f"{where}.due", a["due"]),
        "kind": _choice(f"{where}.kind", ActionKind, a.get("kind", "task")),
        "status": before["status"] if before else str(ActionStatus.OPEN),
        "reason": before["reason"] if before else "",
    }


def _raci(where: str, value: object) -> RaciEntry:
    r = _fields(where, value, ("party", "role"), ("kind",))
    return {
        "party": _text(f"{where}.party", r["party"], required=True),
        "kind": _choice(f"{where}.kind", PartyKind, r.get("kind", "person")),
        "role": _choice(f"{where}.role", RaciRole, r["role"]),
    }


def normalise_plan(plan: Mapping[str, Any], recorded: Plan | None = None) -> Plan:
    """The whole plan: its actions and who is responsible, accountable, consulted and
    informed (one role per party, at most one accountable)."""
    p = _fields("plan", plan, (), ("actions", "raci"))
    known = {a["id"]: a for a in (recorded or empty_plan())["actions"]}
    raw_actions = _list("plan.actions", p.get("actions", []))
    actions = [_action(f"plan.actions[{i}]", a, known) for i, a in enumerate(raw_actions)]
    raw_raci = _list("plan.raci", p.get("raci", []))
    raci = [_raci(f"plan.raci[{i}]", r) for i, r in enumerate(raw_raci)]
    _unique("plan.actions", [a["id"] for a in actions], "id")
    _unique("plan.raci", [r["party"] for r in raci], "party")
    if sum(r["role"] == RaciRole.ACCOUNTABLE for r in raci) > 1:
        raise InvalidValue("plan.raci may name one accountable party only")
    return {"actions": actions, "raci": raci}


def approval_gaps(design: Design, goals: list[Goal], plan: Plan) -> list[str]:
    """What an improvement still needs before it can be approved (nothing: ready)."""
    actions = plan["actions"]
    handovers = [a for a in actions if a["kind"] == ActionKind.KNOWLEDGE_HANDOVER]
    last_due = max((a["due"] for a in actions), default="")
    checks = [
        (bool(design["owner"]), "an owner"),
        (bool(goals), "at least one goal"),
        (bool(actions), "at least one action in its plan"),
        (bool(handovers), "a knowledge hand-over action in its plan"),
        (not handovers or any(a["due"] == last_due for a in handovers), _HANDOVER_LAST),
        (any(r["role"] == RaciRole.ACCOUNTABLE for r in plan["raci"]), "an accountable party"),
    ]
    return [need for ok, need in checks if not ok]


_HANDOVER_LAST = "its knowledge hand-over due at the end (no action due after it)"


# -- verification -------------------------------------------------------------------------------


def goal_target(goal: Goal, baseline: int | float | None) -> int | float | None:
    """The value the KPI has to reach: a relative target moves the baseline by the fraction
    of its size in the goal's direction (so it works for a negative NPS too)."""
    target = goal["target"]
    if target["kind"] == TargetKind.ABSOLUTE:
        return target["value"]
    if baseline is None:
        return None
    sign = 1 if goal["direction"] == Direction.INCREASE else -1
    return baseline + sign * abs(baseline) * target["value"]


def goal_met(goal: Goal, target: int | float | None, review: int | float | None) -> bool:
    if target is None or review is None:
        return False
    return review >= target if goal["direction"] == Direction.INCREASE else review <= target


def _figure(where: str, value: object) -> Figure:
    f = _fields(where, value, ("value", "count"))
    number = None if f["value"] is None else _number(f"{where}.value", f["value"])
    return {"value": number, "count": _count(f"{where}.count", f["count"])}


def _comparison(where: str, value: object) -> Comparison | None:
    if value is None:
        return None
    c = _fields(where, value, ("baseline", "review"))
    return {
        "baseline": _figure(f"{where}.baseline", c["baseline"]),
        "review": _figure(f"{where}.review", c["review"]),
    }


def _row(where: str, goal: Goal, result: Mapping[str, Any]) -> ControlRow:
    baseline = _figure(f"{where}.baseline", result["baseline"])
    review = _figure(f"{where}.review", result["review"])
    target = goal_target(goal, baseline["value"])
    return {
        "goal_id": goal["id"],
        "kpi": goal["kpi"],
        "direction": goal["direction"],
        "target": target,
        "baseline": baseline,
        "review": review,
        "comparison": _comparison(f"{where}.comparison", result.get("comparison")),
        "met": goal_met(goal, target, review["value"]),
    }


def control_table(goals: list[Goal], results: object) -> list[ControlRow]:
    """One row per goal, in the goals' order: the measured figures as given, the target
    and whether it was met as the domain judges them."""
    items = _list("results", results)
    by_goal: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for i, item in enumerate(items):
        where = f"results[{i}]"
        fields = _fields(where, item, ("goal_id", "baseline", "review"), ("comparison",))
        goal_id = _text(f"{where}.goal_id", fields["goal_id"], required=True)
        if goal_id in by_goal:
            raise InvalidValue(f"{where}.goal_id {goal_id!r} is given twice")
        by_goal[goal_id] = (where, fields)
    unknown = sorted(set(by_goal) - {g["id"] for g in goals})
    if unknown:
        raise InvalidValue(f"results name goals the improvement does not have: {unknown}")
    missing = [g["id"] for g in goals if g["id"] not in by_goal]
    if missing:
        raise InvalidValue(f"results need a row for every goal; missing: {missing}")
    return [_row(by_goal[g["id"]][0], g, by_goal[g["id"]][1]) for g in goals]


_PINNED_REQUIRED = ("log_position", "kpi_definitions_version")


def normalise_pinned(pinned: object) -> Pinned:
    """The inputs a verification was computed from, so it can be recomputed: the event log
    position read up to and the version of the KPI definitions, plus any other plain
    values the application pins (a reporting zone, say)."""
    if not isinstance(pinned, Mapping):
        raise InvalidValue(f"pinned must be an object, not {pinned!r}")
    fields = _fields("pinned", pinned, _PINNED_REQUIRED, [str(key) for key in pinned])
    clean: Pinned = {
        "log_position": _count("pinned.log_position", fields["log_position"]),
        "kpi_definitions_version": _text(
            "pinned.kpi_definitions_version", fields["kpi_definitions_version"], required=True
        ),
    }
    for key, value in fields.items():
        if key not in clean:
            clean[_text("pinned (a key)", key, required=True)] = _plain(f"pinned.{key}", value)
    return clean


def _plain(where: str, value: object) -> str | int | float | bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return _number(where, value)
    if isinstance(value, str):
        return _text(where, value)
    raise InvalidValue(f"{where} must be text, a number, true, false or null, not {value!r}")


def cause_analysis(
    goal_id: str, cause: str, follow_up_measures: Sequence[str], follow_up_improvement: str | None
) -> tuple[str, str, list[str], str | None]:
    """The parts of a cause analysis, checked: a cause and what is done about it."""
    return (
        _text("goal_id", goal_id, required=True),
        _text("cause", cause, required=True),
        _texts("follow_up_measures", follow_up_measures),
        _optional_text("follow_up_improvement", follow_up_improvement),
    )


def reason(where: str, value: object) -> str:
    """A reason someone has to give (declining, holding, dropping, withdrawing)."""
    return _text(where, value, required=True)
