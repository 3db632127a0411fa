"""SLA policies saved through the ServiceDesk application.

Policies share the incidents' event store, so their events are in the same notification log
and reach the same Kafka topic; the clock projection learns them from there.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from application.desk.errors import VersionConflict
from application.desk.service_desk import ServiceDesk
from domain.shared_kernel.actor import Actor
from domain.shared_kernel.errors import DomainError
from domain.sla.sla_policy import SlaPolicy


class PolicyNotFound(DomainError):
    pass


class SlaPolicies:
    def __init__(self, desk: ServiceDesk) -> None:
        self.desk = desk

    def create(
        self, spec: Mapping[str, Any], by: Actor, causation_id: str, policy_id: UUID | None = None
    ) -> SlaPolicy:
        policy = SlaPolicy.create(spec, by, causation_id, policy_id=policy_id)
        self.desk.save(policy)
        return policy

    def get(self, policy_id: UUID, version: int | None = None) -> SlaPolicy:
        try:
            policy = self.desk.repository.get(policy_id, version=version)
        except AggregateNotFoundError:
            raise PolicyNotFound(f"no SLA policy with id {policy_id}") from None
        if not isinstance(policy, SlaPolicy):
            raise PolicyNotFound(f"no SLA policy with id {policy_id}")
        return policy

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
        for _ in range(20):
            policy = self.get(policy_id)
            if expected_version is not None and policy.version != expected_version:
                raise VersionConflict(
                    f"SLA policy {policy_id} is at version {policy.version}, "
                    f"not {expected_version}: reload it and try again"
                )
            (policy.amend if partial else policy.revise)(spec, by, causation_id)
            try:
                self.desk.save(policy)
                return policy
            except IntegrityError:
                if expected_version is not None:
                    raise VersionConflict(f"SLA policy {policy_id} was changed meanwhile") from None
                time.sleep(0.005)
        raise VersionConflict(f"SLA policy {policy_id} is changing too fast; try again")

    def versions(self, policy_id: UUID) -> list[dict[str, Any]]:
        """Every version with who made it, why (causation id) and when."""
        out = []
        for domain_event in self.desk.events.get(policy_id):
            if not isinstance(domain_event, (SlaPolicy.Created, SlaPolicy.Revised)):
                continue
            out.append(
                {
                    "version": domain_event.originator_version,
                    "effective_from": domain_event.timestamp,
                    "actor": domain_event.by.as_dict(),
                    "causation_id": domain_event.causation_id,
                    "spec": domain_event.spec,
                }
            )
        if not out:
            raise PolicyNotFound(f"no SLA policy with id {policy_id}")
        return out
