"""A monitoring alert's fingerprint (service + check) and the incident it keeps open.

While that incident is open, alerts with the same fingerprint attach to it (work notes)
instead of opening another one; every change of the link goes through this aggregate's
version, so two alerts racing on one fingerprint cannot both open an incident.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.shared_kernel.value_checks import CheckedEvent

_NAMESPACE = UUID("8e4d3d5c-27a5-4b0a-a3a4-1c9b2b7f2c02")


def fingerprint_id(service: str, check: str) -> UUID:
    return uuid5(_NAMESPACE, f"{service}\n{check}")


class AlertFingerprint(Aggregate):
    class Event(CheckedEvent, Aggregate.Event):
        class_version = 1

    class Registered(CheckedEvent, Aggregate.Created):
        class_version = 1
        service: str
        check: str
        incident_id: str

    @classmethod
    def create_id(cls, service: str, check: str, **_: Any) -> UUID:
        return fingerprint_id(service, check)

    @event(Registered)
    def __init__(self, service: str, check: str, incident_id: str) -> None:
        self.service, self.check = service, check
        self.incident_id: str | None = incident_id
        self.incidents = 1

    @event("IncidentTracked")
    def track(self, incident_id: str) -> None:
        """The alert fired while its incident was closed or cancelled: a new one is tracked.

        A resolved incident stays tracked, so that a flapping alert reopens it instead of
        opening another one."""
        self.incident_id = incident_id
        self.incidents += 1
