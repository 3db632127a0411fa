"""The incident's states, hold reasons, channels, escalation kinds and support tiers."""

from __future__ import annotations

from enum import StrEnum


class IncidentState(StrEnum):
    NEW = "new"
    IN_PROGRESS = "in_progress"
    ON_HOLD = "on_hold"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"


OPEN_STATES = frozenset({IncidentState.NEW, IncidentState.IN_PROGRESS, IncidentState.ON_HOLD})


class Channel(StrEnum):
    PHONE = "phone"
    EMAIL = "email"
    PORTAL = "portal"
    MONITORING = "monitoring"


class HoldReason(StrEnum):
    AWAITING_CALLER = "awaiting_caller"
    AWAITING_VENDOR = "awaiting_vendor"
    AWAITING_PROBLEM = "awaiting_problem"
    AWAITING_CHANGE = "awaiting_change"
    AWAITING_EVIDENCE = "awaiting_evidence"  # imported tickets (ServiceNow "Awaiting Evidence")


class EscalationKind(StrEnum):
    FUNCTIONAL = "functional"
    HIERARCHICAL = "hierarchical"


TIERS = ("L1", "L2", "L3")
