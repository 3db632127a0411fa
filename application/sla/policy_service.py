"""SLA policies saved through the ServiceDesk application.

Policies share the incidents' event store, so their events are in the same notification log
and reach the same Kafka topic; the clock projection learns them from there.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypedDict, TypeGuard
from uuid import UUID

from application.desk.errors import NotFound
from application.desk.service_desk import ServiceDesk
from domain.shared_kernel.actor import Actor
from domain.shared_kernel.command_context import Context
from domain.shared_kernel.errors import DomainError
from domain.sla.commands import DefinePolicy, RevisePolicy
from domain.sla.sla_policy import SlaPolicy


class PolicyNotFound(DomainError):
    pass


class VersionRecord(TypedDict):
    """One version of a policy: who made it, why (causation id) and when."""

    version: int
    effective_from: datetime
    actor: dict[str, str]
    causation_id: str
    spec: dict[str, Any]


_VersionEvent = SlaPolicy.Created | SlaPolicy.Revised


class SlaPolicies:
    def __init__(self, desk: ServiceDesk) -> None:
        self.desk = desk

    def create(
        self, spec: Mapping[str, Any], by: Actor, causation_id: str, policy_id: UUID | None = None
    ) -> SlaPolicy:
        policy: SlaPolicy = self.desk.create(
            DefinePolicy(spec, policy_id), Context(by, causation_id)
        )
        return policy

    def get(self, policy_id: UUID, version: int | None = None) -> SlaPolicy:
        policy = self.desk.find(policy_id) if version is None else self._at(policy_id, version)
        if not isinstance(policy, SlaPolicy):
            raise PolicyNotFound(f"no SLA policy with id {policy_id}")
        return policy

    def _at(self, policy_id: UUID, version: int) -> Any:
        try:
            return self.desk.get(policy_id, version=version)
        except DomainError:
            return None

    def exists(self, policy_id: UUID) -> bool:
        try:
            self.get(policy_id)
            return True
        except PolicyNotFound:
            return False

    def edit(
        self,
        policy_id: UUID,
        spec: Mapping[str, Any],
        by: Actor,
        causation_id: str,
        partial: bool,
        expected_version: int | None = None,
    ) -> SlaPolicy:
        """A new version: the whole spec (PUT) or only the keys given (PATCH)."""
        ctx = Context(by, causation_id, expected_version=expected_version)
        try:
            policy: SlaPolicy = self.desk.execute(policy_id, RevisePolicy(spec, partial), ctx)
        except NotFound:
            raise PolicyNotFound(f"no SLA policy with id {policy_id}") from None
        return policy

    def versions(self, policy_id: UUID) -> list[VersionRecord]:
        """Every version with who made it, why (causation id) and when."""
        out = [_version(e) for e in self.desk.events.get(policy_id) if _is_version(e)]
        if not out:
            raise PolicyNotFound(f"no SLA policy with id {policy_id}")
        return out


def _is_version(event: object) -> TypeGuard[_VersionEvent]:
    return isinstance(event, (SlaPolicy.Created, SlaPolicy.Revised))


def _version(event: _VersionEvent) -> VersionRecord:
    return {
        "version": event.originator_version,
        "effective_from": event.timestamp,
        "actor": event.by.as_dict(),
        "causation_id": event.causation_id,
        "spec": dict(event.spec),
    }
