"""alert.fired / alert.resolved from monitoring -> incidents, one per open fingerprint.

- The fingerprint is (service, check); its `AlertFingerprint` remembers the incident it
  tracks.
- alert.fired: no tracked incident, or the tracked one is closed or cancelled -> log a new
  incident (channel monitoring, by the CloudEvent `source` as an upstream actor, at the
  CloudEvent `time`, external_ref "service/check"). Tracked and open -> a work note on it.
  Tracked and resolved -> reopen it with a work note: a flapping alert reopens its incident,
  it never opens a second one.
- alert.resolved: a work note on the tracked incident if it is open; it is also resolved
  (code `data.resolution_code`, default monitoring-recovered) when `data.auto_resolve` is
  true, or when it is absent/null and ITSM_INBOUND_ALERT_AUTO_RESOLVE is true. No open
  incident: nothing changes (the receipt still records the message).
"""

from __future__ import annotations

from typing import Any, Protocol
from uuid import UUID

from application.inbound.inbound_message import CloudEvent
from domain.inbound.alert_fingerprint import AlertFingerprint, fingerprint_id
from domain.incident.commands import Comment, LogIncident, Reopen, Resolve
from domain.incident.incident import Incident
from domain.incident.lifecycle import OPEN_STATES, IncidentState
from domain.shared_kernel.actor import Actor, ActorKind
from domain.shared_kernel.command_context import Context
from domain.shared_kernel.commands import Command, Creation

# severity -> (impact, urgency) when the alert does not give them
SEVERITY = {"critical": (1, 1), "major": (2, 1), "warning": (2, 2), "minor": (2, 3), "info": (3, 3)}
DEFAULT_SEVERITY = "warning"
RECOVERED = "monitoring-recovered"


class Work(Protocol):
    """The desk's unit of work, as the mappers use it."""

    def get(self, aggregate_id: UUID) -> Any: ...
    def add(self, aggregate: Any) -> None: ...
    def create(self, command: Creation, ctx: Context) -> Any: ...
    def run(self, aggregate: Any, command: Command, ctx: Context) -> Any: ...


def fingerprint(data: dict[str, Any]) -> str:
    return f"{data['service']}/{data['check']}"


class AlertHandler:
    def __init__(self, auto_resolve: bool = False) -> None:
        self.auto_resolve = auto_resolve

    def _tracked(
        self, work: Work, data: dict[str, Any]
    ) -> tuple[AlertFingerprint | None, Incident | None]:
        tracker = work.get(fingerprint_id(data["service"], data["check"]))
        if tracker is None or tracker.incident_id is None:
            return tracker, None
        return tracker, work.get(UUID(tracker.incident_id))

    def fired(self, work: Work, event: CloudEvent) -> tuple[str, Incident]:
        data, ctx = event.data, _context(event)
        tracker, incident = self._tracked(work, data)
        note = Comment(f"alert fired: {data['summary']}")
        if incident is not None and incident.state in OPEN_STATES:
            return "attached", work.run(incident, note, ctx)
        if incident is not None and incident.state == IncidentState.RESOLVED:
            work.run(incident, Reopen("the alert fired again"), ctx)
            return "reopened", work.run(incident, note, ctx)
        return "opened", self._open(work, event, ctx, tracker)

    def _open(
        self, work: Work, event: CloudEvent, ctx: Context, tracker: AlertFingerprint | None
    ) -> Incident:
        """A new incident, tracked by the fingerprint (a new one for a first alert)."""
        incident: Incident = work.create(_log_incident(event), ctx)
        if tracker is None:
            service, check = event.data["service"], event.data["check"]
            work.add(AlertFingerprint(service=service, check=check, incident_id=str(incident.id)))
        else:
            tracker.track(str(incident.id))
        return incident

    def resolved(self, work: Work, event: CloudEvent) -> tuple[str, Incident | None]:
        data, ctx = event.data, _context(event)
        _, incident = self._tracked(work, data)
        if incident is None or incident.state not in OPEN_STATES:
            return "no-open-incident", incident
        summary = data.get("summary") or "the check recovered"
        work.run(incident, Comment(f"alert resolved: {summary}"), ctx)
        auto = data.get("auto_resolve")
        if not (auto if auto is not None else self.auto_resolve):
            return "noted", incident
        code = data.get("resolution_code") or RECOVERED
        work.run(incident, Resolve(code, f"resolved by monitoring: {summary}"), ctx)
        return "resolved", incident


def _context(event: CloudEvent) -> Context:
    """The monitoring tool acted, at the alert's own time, because of this message."""
    by = Actor(event.source, ActorKind.UPSTREAM)
    return Context(by=by, causation_id=event.causation_id, occurred_at=event.time)


def _log_incident(event: CloudEvent) -> LogIncident:
    data = event.data
    impact, urgency = SEVERITY[data.get("severity") or DEFAULT_SEVERITY]
    return LogIncident(
        title=data["summary"],
        caller=event.source,
        impact=data.get("impact") or impact,
        urgency=data.get("urgency") or urgency,
        description=data.get("description") or "",
        channel="monitoring",
        service=data["service"],
        category=data.get("category") or "monitoring",
        subcategory=data.get("subcategory") or data["check"],
        source=event.source,
        external_ref=fingerprint(data),
    )
