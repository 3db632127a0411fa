"""The default SLA policy, from settings, so that a fresh install has clocks on every incident.

It is created once, at bootstrap, with a deterministic id: several processes starting
together race harmlessly (the store accepts one Created event for the id) and a restart
finds it already there. Managers edit it like any other policy; bootstrap never changes an
existing one, so those edits stand.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol
from uuid import UUID, uuid5

from eventsourcing.persistence import IntegrityError

from application.sla.policy_service import SlaPolicies
from domain.shared_kernel.actor import Actor, ActorKind


class DefaultPolicySettings(Protocol):
    """The settings the default policy is made from (infra.settings.Settings has them)."""

    sla_default_policy: bool
    sla_default_name: str
    sla_default_respond: str
    sla_default_resolve: str
    sla_default_calendar: str
    sla_default_warnings: str


DEFAULT_POLICY_ID = uuid5(UUID("2c7a0f2e-98b1-4f43-8d55-6b0f3a1c9e77"), "itsm/sla/default")
BOOTSTRAP = Actor("bootstrap", ActorKind.AUTOMATION)
log = logging.getLogger(__name__)


def _targets(text: str) -> dict[str, float]:
    """'P1=900,P2=3600' -> {'P1': 900, 'P2': 3600}: seconds per priority (or *)."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        out[key.strip()] = float(value)
    return out


def _calendar(text: str) -> Any:
    """BusinessCalendar.to_dict() as JSON; empty: None, 24x7."""
    return json.loads(text) if text else None


def default_spec(settings: DefaultPolicySettings) -> dict[str, Any]:
    return {
        "name": settings.sla_default_name,
        "description": "Shipped default: applies to every incident no other policy matches.",
        "rank": -1000,
        "conditions": {},
        "targets": {
            "respond": _targets(settings.sla_default_respond),
            "resolve": _targets(settings.sla_default_resolve),
        },
        "calendar": _calendar(settings.sla_default_calendar),
        "warnings": [int(w) for w in settings.sla_default_warnings.split(",") if w.strip()],
    }


def ensure_default_policy(policies: SlaPolicies, settings: DefaultPolicySettings) -> bool:
    """Create the default policy unless it exists; True if this call created it."""
    if not settings.sla_default_policy or policies.exists(DEFAULT_POLICY_ID):
        return False
    try:
        policies.create(default_spec(settings), BOOTSTRAP, "bootstrap", DEFAULT_POLICY_ID)
    except IntegrityError:  # another process created it first
        return False
    log.info("created the default SLA policy %s", DEFAULT_POLICY_ID)
    return True
