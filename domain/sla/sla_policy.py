"""SLA policies: which tickets a policy covers, its targets, calendar, pauses and warnings.

A policy is an event-sourced aggregate. Every edit is an event carrying the policy's whole
new specification, so each version is complete on its own and never changes afterwards: a
clock records the (policy id, version) it started with and keeps it (see docs/sla.md).

A specification ("spec") is plain JSON-able data, durations in seconds:

    {"name": "Default", "description": "", "rank": 0, "active": true,
     "conditions": {"ticket_type": ["incident"], "priority": ["P1", "P2"], "service": [],
                    "category": [], "organisation": []},
     "targets": {"respond": {"P1": 900, ...}, "resolve": {"P1": 14400, ...}},
     "ola": {"network": {"P1": 3600, "*": 7200}},
     "calendar": null,                     # BusinessCalendar.to_dict(), null = 24x7
     "pause": {"respond": [], "resolve": ["awaiting_caller", "awaiting_vendor"],
               "ola": ["awaiting_caller", "awaiting_vendor"]},
     "warnings": [50, 75, 90]}

A target map is keyed by priority (P1..P4); the key "*" applies to priorities not listed.
A target is positive and at most `checks.LONGEST_DURATION` (366 days) of business time, and
falls due within `LONGEST_REACH` (732 days) of wall-clock time on the policy's calendar.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.incident.lifecycle import HoldReason
from domain.shared_kernel.actor import Actor
from domain.shared_kernel.business_calendar import BusinessCalendar
from domain.shared_kernel.errors import IllegalTransition, InvalidValue
from domain.shared_kernel.events import StampedEvent
from domain.shared_kernel.value_checks import TIMES_FROM, CheckedEvent, check_duration

METRICS = ("respond", "resolve")
CONDITIONS = ("ticket_type", "priority", "service", "category", "organisation")
PRIORITIES = ("P1", "P2", "P3", "P4")
TICKET_TYPES = ("incident",)
DEFAULT_PAUSE = {
    "respond": [],
    "resolve": ["awaiting_caller", "awaiting_vendor"],
    "ola": ["awaiting_caller", "awaiting_vendor"],
}
DEFAULT_WARNINGS = [50, 75, 90]
# The clocks' read model walks the calendar a day at a time to find a due time: a long
# target on a sparse calendar (a minute a week) would cost seconds per event, or run past
# the end of Python's calendar.
LONGEST_REACH = timedelta(days=732)
# The clocks' read model keeps the rank in an INTEGER column.
RANK_LIMIT = 2**31 - 1
_KEYS = {
    "name",
    "description",
    "rank",
    "active",
    "conditions",
    "targets",
    "ola",
    "calendar",
    "pause",
    "warnings",
}


class SlaPolicy(Aggregate):
    """Each edit is a new version; `version` is the aggregate version (1 = as created)."""

    class Event(StampedEvent):
        pass

    class Created(CheckedEvent, Aggregate.Created):
        class_version = 1
        spec: dict
        by: Actor
        causation_id: str

    @event(Created)
    def __init__(self, spec: dict, by: Actor, causation_id: str) -> None:
        self.spec = spec

    @classmethod
    def create(
        cls, spec: Mapping[str, Any], by: Actor, causation_id: str, policy_id: UUID | None = None
    ) -> SlaPolicy:
        clean = normalise_spec(spec)
        if policy_id is not None:  # a deterministic id (the default policy)
            return cls._create(
                cls.Created, id=policy_id, spec=clean, by=by, causation_id=causation_id
            )
        return cls(spec=clean, by=by, causation_id=causation_id)

    def revise(self, spec: Mapping[str, Any], by: Actor, causation_id: str) -> None:
        """Replace the whole specification; a new version. Unchanged is refused."""
        clean = normalise_spec(spec)
        if clean == self.spec:
            raise IllegalTransition(
                f"SLA policy {self.spec['name']!r} already has that "
                "specification; nothing to change"
            )
        self._revised(clean, by, causation_id)

    def amend(self, changes: Mapping[str, Any], by: Actor, causation_id: str) -> None:
        """Change only the top-level keys given (a PATCH); a new version."""
        unknown = set(changes) - _KEYS
        if unknown:
            raise InvalidValue(f"unknown policy fields {sorted(unknown)}")
        self.revise({**self.spec, **changes}, by, causation_id)

    @event("Revised")
    def _revised(self, spec: dict, by: Actor, causation_id: str) -> None:
        self.spec = spec


# -- specification ------------------------------------------------------------


def _seconds(where: str, value: Any) -> float:
    check_duration(where, value)
    return int(value) if float(value).is_integer() else float(value)


def _targets(where: str, raw: Any) -> dict[str, float]:
    if not isinstance(raw, Mapping):
        raise InvalidValue(f"{where} must map priorities (P1..P4 or *) to seconds")
    out = {}
    for key, value in raw.items():
        if key not in (*PRIORITIES, "*"):
            raise InvalidValue(f"{where}: {key!r} is not a priority (P1..P4) or *")
        out[key] = _seconds(f"{where}.{key}", value)
    return dict(sorted(out.items()))


def _names(where: str, raw: Any, allowed: Iterable[str] | None = None) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, (list, tuple)) or not all(isinstance(v, str) and v for v in raw):
        raise InvalidValue(f"{where} must be a list of names")
    if allowed is not None:
        allowed = tuple(allowed)
        bad = [v for v in raw if v not in allowed]
        if bad:
            raise InvalidValue(f"{where}: {bad} not among {list(allowed)}")
    return sorted(set(raw))


def normalise_spec(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A validated, canonical spec (equal specs compare equal). Raises InvalidValue."""
    if not isinstance(raw, Mapping):
        raise InvalidValue("a policy specification is an object")
    unknown = set(raw) - _KEYS
    if unknown:
        raise InvalidValue(f"unknown policy fields {sorted(unknown)}")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidValue("a policy needs a name")
    rank = raw.get("rank", 0)
    if isinstance(rank, bool) or not isinstance(rank, int) or abs(rank) > RANK_LIMIT:
        raise InvalidValue(
            f"rank must be an integer of at most {RANK_LIMIT} either way, not {rank!r}"
        )
    conditions_raw = raw.get("conditions") or {}
    if not isinstance(conditions_raw, Mapping) or set(conditions_raw) - set(CONDITIONS):
        raise InvalidValue(f"conditions may only name {list(CONDITIONS)}")
    allowed = {"ticket_type": TICKET_TYPES, "priority": PRIORITIES}
    conditions = {}
    for key in CONDITIONS:
        values = _names(f"conditions.{key}", conditions_raw.get(key), allowed.get(key))
        if values:
            conditions[key] = values
    targets_raw = raw.get("targets") or {}
    if not isinstance(targets_raw, Mapping) or set(targets_raw) - set(METRICS):
        raise InvalidValue(f"targets may only name the metrics {list(METRICS)}")
    targets = {m: _targets(f"targets.{m}", targets_raw[m]) for m in METRICS if m in targets_raw}
    ola_raw = raw.get("ola") or {}
    if not isinstance(ola_raw, Mapping):
        raise InvalidValue("ola must map assignment groups to targets")
    ola = {group: _targets(f"ola.{group}", t) for group, t in sorted(ola_raw.items())}
    if not any(targets.values()) and not ola:
        raise InvalidValue("a policy needs at least one target")
    pause_raw = raw.get("pause")
    pause_raw = DEFAULT_PAUSE if pause_raw is None else pause_raw
    if not isinstance(pause_raw, Mapping) or set(pause_raw) - {*METRICS, "ola"}:
        raise InvalidValue("pause maps respond, resolve and ola to hold reasons")
    reasons = [str(r) for r in HoldReason]
    pause = {
        m: _names(f"pause.{m}", pause_raw.get(m, DEFAULT_PAUSE[m]), reasons)
        for m in (*METRICS, "ola")
    }
    warnings = raw.get("warnings", DEFAULT_WARNINGS)
    if not isinstance(warnings, (list, tuple)) or not all(
        isinstance(w, (int, float)) and not isinstance(w, bool) and 0 < w < 100 for w in warnings
    ):
        raise InvalidValue("warnings are percentages of the target, each between 0 and 100")
    calendar = raw.get("calendar")
    if calendar is not None:
        try:
            calendar = BusinessCalendar.from_dict(calendar).to_dict()
        except ValueError as error:
            raise InvalidValue(f"calendar: {error}") from None
    active = raw.get("active", True)
    if not isinstance(active, bool):
        raise InvalidValue("active is true or false")
    description = raw.get("description") or ""
    if not isinstance(description, str):
        raise InvalidValue("description is text")
    _check_reach([*targets.values(), *ola.values()], calendar)
    return {
        "name": name.strip(),
        "description": description,
        "rank": rank,
        "active": active,
        "conditions": conditions,
        "targets": targets,
        "ola": ola,
        "calendar": calendar,
        "pause": pause,
        "warnings": sorted({int(w) if float(w).is_integer() else w for w in warnings}),
    }


def _check_reach(tables: list[dict[str, float]], calendar: dict | None) -> None:
    """Every target falls due within LONGEST_REACH on the calendar."""
    longest = max((seconds for table in tables for seconds in table.values()), default=0)
    available = _seconds_within_reach(json.dumps(calendar, sort_keys=True))
    if longest > available:
        raise InvalidValue(
            f"a target of {longest} s would not fall due within {LONGEST_REACH.days} days: "
            f"the calendar has {available:.0f} s of business time in that span"
        )


@lru_cache(maxsize=256)
def _seconds_within_reach(key: str) -> float:
    """Business time in the LONGEST_REACH after the first supported moment. The week and the
    yearly holidays repeat; a dated holiday elsewhere stretches a due time by its day."""
    calendar = _calendar(key)
    return calendar.measure(TIMES_FROM, TIMES_FROM + LONGEST_REACH).total_seconds()


# -- matching -------------------------------------------------------------------


def matches(spec: Mapping[str, Any], ticket: Mapping[str, Any]) -> bool:
    """Every condition holds: the ticket's value is one of the listed ones.

    A ticket without a value for a conditioned attribute (no organisation known) does
    not match that condition.
    """
    return spec.get("active", True) and all(
        ticket.get(key) in values for key, values in spec.get("conditions", {}).items()
    )


def specificity(spec: Mapping[str, Any]) -> int:
    return len(spec.get("conditions", {}))


def choose(
    candidates: Iterable[tuple[str, datetime | str, Mapping[str, Any]]], ticket: Mapping[str, Any]
) -> str | None:
    """The id of the policy that applies to `ticket`, from (id, created_at, spec) triples.

    Rule: among active policies whose conditions all hold, the most specific (most
    conditions) wins; then the highest rank; then the oldest (created first); then the
    smallest id, so that the choice is total and deterministic.
    """
    best = None
    for policy_id, created, spec in candidates:
        if not matches(spec, ticket):
            continue
        key = (-specificity(spec), -int(spec.get("rank", 0)), str(created), str(policy_id))
        if best is None or key < best[0]:
            best = (key, policy_id)
    return best[1] if best else None


def target(spec: Mapping[str, Any], metric: str, priority: str | None) -> float | None:
    """Seconds allowed for `metric` ("respond", "resolve" or "ola:<group>") at `priority`."""
    if metric.startswith("ola:"):
        table = spec.get("ola", {}).get(metric[4:]) or {}
    else:
        table = spec.get("targets", {}).get(metric) or {}
    value = table.get(priority) if priority else None
    return value if value is not None else table.get("*")


def pause_reasons(spec: Mapping[str, Any], metric: str) -> list[str]:
    kind = "ola" if metric.startswith("ola:") else metric
    return spec.get("pause", DEFAULT_PAUSE).get(kind, [])


def calendar_of(spec: Mapping[str, Any]) -> BusinessCalendar:
    return _calendar(json.dumps(spec.get("calendar"), sort_keys=True))


@lru_cache(maxsize=256)
def _calendar(key: str) -> BusinessCalendar:
    spec = json.loads(key)
    return BusinessCalendar.always() if spec is None else BusinessCalendar.from_dict(spec)
