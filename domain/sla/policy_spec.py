"""An SLA policy's specification ("spec"): what it may say, checked, in one canonical form.

A spec is plain JSON-able data, durations in seconds:

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
from datetime import timedelta
from functools import lru_cache
from typing import Any, TypedDict

from domain.incident.lifecycle import HoldReason
from domain.shared_kernel.business_calendar import BusinessCalendar
from domain.shared_kernel.calendar_spec import CalendarSpec
from domain.shared_kernel.errors import InvalidValue
from domain.shared_kernel.value_checks import TIMES_FROM, check_duration

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
SPEC_KEYS = {
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
Targets = dict[str, float]  # seconds by priority (P1..P4, or * for the others)


class PolicySpec(TypedDict):
    """A spec as `normalise_spec` returns it, and as every policy event records it."""

    name: str
    description: str
    rank: int
    active: bool
    conditions: dict[str, list[str]]  # condition: the values it accepts
    targets: dict[str, Targets]  # metric (respond, resolve): its targets
    ola: dict[str, Targets]  # assignment group: its targets
    calendar: CalendarSpec | None  # None: 24x7
    pause: dict[str, list[str]]  # respond, resolve, ola: the hold reasons that pause it
    warnings: list[float]  # percentages of the target


def normalise_spec(raw: Mapping[str, Any]) -> PolicySpec:
    """A validated, canonical spec (equal specs compare equal). Raises InvalidValue."""
    if not isinstance(raw, Mapping):
        raise InvalidValue("a policy specification is an object")
    check_field_names(raw)
    name, rank = _name(raw.get("name")), _rank(raw.get("rank", 0))
    conditions = _conditions(raw.get("conditions") or {})
    targets, ola = _metric_targets(raw.get("targets") or {}), _ola_targets(raw.get("ola") or {})
    if not any(targets.values()) and not ola:
        raise InvalidValue("a policy needs at least one target")
    pause = _pause(raw.get("pause"))
    warnings = _warnings(raw.get("warnings", DEFAULT_WARNINGS))
    calendar = _calendar_spec(raw.get("calendar"))
    active, description = _active(raw.get("active", True)), _description(raw.get("description"))
    _check_reach([*targets.values(), *ola.values()], calendar)
    return {
        "name": name,
        "description": description,
        "rank": rank,
        "active": active,
        "conditions": conditions,
        "targets": targets,
        "ola": ola,
        "calendar": calendar,
        "pause": pause,
        "warnings": warnings,
    }


def check_field_names(raw: Mapping[str, object]) -> None:
    unknown = set(raw) - SPEC_KEYS
    if unknown:
        raise InvalidValue(f"unknown policy fields {sorted(unknown)}")


def _name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidValue("a policy needs a name")
    return name.strip()


def _rank(rank: object) -> int:
    if isinstance(rank, bool) or not isinstance(rank, int) or abs(rank) > RANK_LIMIT:
        raise InvalidValue(
            f"rank must be an integer of at most {RANK_LIMIT} either way, not {rank!r}"
        )
    return rank


def _conditions(raw: object) -> dict[str, list[str]]:
    if not isinstance(raw, Mapping) or set(raw) - set(CONDITIONS):
        raise InvalidValue(f"conditions may only name {list(CONDITIONS)}")
    allowed = {"ticket_type": TICKET_TYPES, "priority": PRIORITIES}
    listed = {
        key: _names(f"conditions.{key}", raw.get(key), allowed.get(key)) for key in CONDITIONS
    }
    return {key: values for key, values in listed.items() if values}


def _metric_targets(raw: object) -> dict[str, Targets]:
    if not isinstance(raw, Mapping) or set(raw) - set(METRICS):
        raise InvalidValue(f"targets may only name the metrics {list(METRICS)}")
    return {m: _targets(f"targets.{m}", raw[m]) for m in METRICS if m in raw}


def _ola_targets(raw: object) -> dict[str, Targets]:
    if not isinstance(raw, Mapping):
        raise InvalidValue("ola must map assignment groups to targets")
    return {group: _targets(f"ola.{group}", t) for group, t in sorted(raw.items())}


def _targets(where: str, raw: object) -> Targets:
    if not isinstance(raw, Mapping):
        raise InvalidValue(f"{where} must map priorities (P1..P4 or *) to seconds")
    out = {}
    for key, value in raw.items():
        if key not in (*PRIORITIES, "*"):
            raise InvalidValue(f"{where}: {key!r} is not a priority (P1..P4) or *")
        out[key] = _seconds(f"{where}.{key}", value)
    return dict(sorted(out.items()))


def _seconds(where: str, value: object) -> float:
    seconds = check_duration(where, value)
    return int(seconds) if float(seconds).is_integer() else float(seconds)


def _pause(raw: object) -> dict[str, list[str]]:
    pauses = DEFAULT_PAUSE if raw is None else raw
    if not isinstance(pauses, Mapping) or set(pauses) - {*METRICS, "ola"}:
        raise InvalidValue("pause maps respond, resolve and ola to hold reasons")
    reasons = [str(r) for r in HoldReason]
    return {
        m: _names(f"pause.{m}", pauses.get(m, DEFAULT_PAUSE[m]), reasons) for m in (*METRICS, "ola")
    }


def _names(where: str, raw: object, allowed: Iterable[str] | None = None) -> list[str]:
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


def _warnings(warnings: object) -> list[float]:
    if not isinstance(warnings, (list, tuple)) or not all(
        isinstance(w, (int, float)) and not isinstance(w, bool) and 0 < w < 100 for w in warnings
    ):
        raise InvalidValue("warnings are percentages of the target, each between 0 and 100")
    return sorted({int(w) if float(w).is_integer() else w for w in warnings})


def _calendar_spec(calendar: object) -> CalendarSpec | None:
    if calendar is None:
        return None
    try:
        return BusinessCalendar.from_dict(calendar).to_dict()
    except ValueError as error:
        raise InvalidValue(f"calendar: {error}") from None


def _active(active: object) -> bool:
    if not isinstance(active, bool):
        raise InvalidValue("active is true or false")
    return active


def _description(description: object) -> str:
    description = description or ""
    if not isinstance(description, str):
        raise InvalidValue("description is text")
    return description


def _check_reach(tables: list[Targets], calendar: CalendarSpec | None) -> None:
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
    calendar = cached_calendar(key)
    return calendar.measure(TIMES_FROM, TIMES_FROM + LONGEST_REACH).total_seconds()


@lru_cache(maxsize=256)
def cached_calendar(key: str) -> BusinessCalendar:
    """The calendar of a spec's "calendar", given as sorted JSON text (None: 24x7)."""
    spec = json.loads(key)
    return BusinessCalendar.always() if spec is None else BusinessCalendar.from_dict(spec)
