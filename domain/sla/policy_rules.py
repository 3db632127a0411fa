"""What a policy's spec says of one ticket: whether it applies, its targets, pauses, calendar.

These read any recorded spec, of any version of the spec's shape: a key a spec does not have
takes its default.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from domain.shared_kernel.business_calendar import BusinessCalendar
from domain.sla.policy_spec import DEFAULT_PAUSE, cached_calendar


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
    best: tuple[tuple[int, int, str, str], str] | None = None
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
    pauses: Mapping[str, list[str]] = spec.get("pause", DEFAULT_PAUSE)
    return pauses.get(kind, [])


def calendar_of(spec: Mapping[str, Any]) -> BusinessCalendar:
    return cached_calendar(json.dumps(spec.get("calendar"), sort_keys=True))
