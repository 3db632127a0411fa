"""SLA policies: which tickets a policy covers, its targets, calendar, pauses and warnings.

A policy is an event-sourced aggregate. Every edit is an event carrying the policy's whole
new specification, so each version is complete on its own and never changes afterwards: a
clock records the (policy id, version) it started with and keeps it (see docs/sla.md).

What a specification may say is domain/sla/policy_spec.py's; what it says of one ticket
(whether it applies, its targets, pauses and calendar) is domain/sla/policy_rules.py's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.shared_kernel.actor import Actor
from domain.shared_kernel.errors import IllegalTransition
from domain.shared_kernel.events import StampedEvent
from domain.shared_kernel.value_checks import CheckedEvent
from domain.sla.policy_rules import calendar_of, choose, matches, pause_reasons, specificity, target
from domain.sla.policy_spec import (
    LONGEST_REACH,
    RANK_LIMIT,
    PolicySpec,
    check_field_names,
    normalise_spec,
)

# Where the application, the API and the tests import them from.
__all__ = [
    "LONGEST_REACH",
    "RANK_LIMIT",
    "PolicySpec",
    "SlaPolicy",
    "calendar_of",
    "choose",
    "matches",
    "normalise_spec",
    "pause_reasons",
    "specificity",
    "target",
]


class SlaPolicy(Aggregate):
    """Each edit is a new version; `version` is the aggregate version (1 = as created)."""

    class Event(StampedEvent):
        pass

    class Created(CheckedEvent, Aggregate.Created):
        class_version = 1
        spec: PolicySpec
        by: Actor
        causation_id: str

    class Revised(Event):
        spec: PolicySpec
        by: Actor
        causation_id: str

    @event(Created)
    def __init__(self, spec: PolicySpec, by: Actor, causation_id: str) -> None:
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
        check_field_names(changes)
        self.revise({**self.spec, **changes}, by, causation_id)

    @event(Revised)
    def _revised(self, spec: PolicySpec, by: Actor, causation_id: str) -> None:
        self.spec = spec
