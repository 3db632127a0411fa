"""incident.snapshot -> domain events: what changed since the previous snapshot of a ticket.

A snapshot is the state of one ticket of another tool right after one update. The mapper
compares it with the previous APPLIED snapshot of the same ticket (kept by its
`SourceTicket`) and with our incident, and runs the commands that take the incident there,
in this order (docs/inbound.md has the full rules and the quirks):

1. first snapshot of a ticket: Logged, at `opened_at`, by `opened_by`;
2. one Reopened per unit of rise of `reopen_count` (previous -> this snapshot);
3. assignment (group or agent changed; a reassignment iff the group changed from one
   non-null value to another between the two snapshots);
4. Reprioritised (impact or urgency changed), Recategorised (category, subcategory or
   service changed);
5. the state: Acknowledged, PutOnHold, Resumed, Resolved, Closed, Cancelled, through the
   minimal legal path of our lifecycle.

Every event is by the person at the source (`updated_by`, kind person), at the source's time
(`updated_at`), caused by `ce:<source>#<cloudevent id>`; the store stamps its own time.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any, TypeVar
from uuid import UUID

from application.inbound.alert_mapper import Work
from application.inbound.inbound_message import CloudEvent
from domain.inbound.source_ticket import SourceTicket, source_ticket_id
from domain.incident.commands import (
    Acknowledge,
    Assign,
    Cancel,
    Close,
    Comment,
    Hold,
    LogIncident,
    Recategorise,
    RecordSourceAssignment,
    RecordSourceReopen,
    Reopen,
    Reprioritise,
    Resolve,
    Resume,
)
from domain.incident.incident import Incident
from domain.incident.lifecycle import OPEN_STATES, IncidentState
from domain.shared_kernel.actor import Actor, ActorKind
from domain.shared_kernel.command_context import Context
from domain.shared_kernel.commands import Command
from domain.shared_kernel.errors import InvalidValue
from domain.shared_kernel.value_checks import parse_time

T = TypeVar("T")

DEFAULT_HOLD_REASON = "awaiting_caller"
DEFAULT_RESOLUTION_CODE = "unspecified"
DEFAULT_LEVEL = 2
# Each unit of rise of reopen_count is an event or two: a larger rise in one update is a
# broken counter, not a hundred reopens.
MOST_REOPENS = 100
# What the previous snapshot remembers: the fields the next comparison needs, a few for the
# audit, and the source's own SLA verdict, which the KPIs report beside ours
# (docs/kpis.md, source_sla_compliance). The CloudEvent itself stays in Kafka for ever.
REMEMBERED = (
    "ref",
    "mod_count",
    "updated_at",
    "updated_by",
    "state",
    "hold_reason",
    "assignment_group",
    "assignee",
    "impact",
    "urgency",
    "priority",
    "category",
    "subcategory",
    "service",
    "reopen_count",
    "reassignment_count",
    "resolution_code",
    "made_sla",
)


def remembered(data: dict[str, Any]) -> dict[str, Any]:
    return {name: data.get(name) for name in REMEMBERED}


def _given(data: dict[str, Any], name: str, current: T) -> T:
    """The snapshot's value, or (null or absent) the incident's `current` one."""
    value: T | None = data.get(name)
    return current if value is None else value


class SourceRecordMapper:
    """Applies one snapshot to an incident (creating it for a ticket's first snapshot)."""

    def __init__(self, source_tz: tzinfo, work: Work) -> None:
        self.source_tz, self.work = source_tz, work

    # -- entry point -----------------------------------------------------------------
    def apply(
        self,
        incident: Incident | None,
        previous: dict[str, Any] | None,
        data: dict[str, Any],
        cause: CloudEvent,
    ) -> Incident:
        step = _Step(self, data, cause)
        if incident is None:
            incident = step.log()
            previous = None
        step.run(incident, previous)
        return incident

    def time(self, text: str | None, name: str = "time") -> datetime | None:
        return parse_time(text, self.source_tz, name) if text else None


class _Step:
    """One snapshot being applied: its actor, time and cause, shared by every command."""

    def __init__(self, mapper: SourceRecordMapper, data: dict[str, Any], cause: CloudEvent) -> None:
        self.mapper, self.data, self.cause = mapper, data, cause
        self.at = mapper.time(data["updated_at"], "updated_at")
        self.by = Actor(data.get("updated_by") or cause.source, ActorKind.PERSON)
        self.ctx = Context(by=self.by, causation_id=cause.causation_id, occurred_at=self.at)

    def do(self, incident: Incident, command: Command) -> None:
        """Every change is a command, run as an agent's would be."""
        self.mapper.work.run(incident, command, self.ctx)

    # -- 1. the first snapshot opens the incident -----------------------------------------
    def log(self) -> Incident:
        ctx = self._opening()
        incident: Incident = self.mapper.work.create(self._log_command(), ctx)
        return incident

    def _opening(self) -> Context:
        """The ticket was opened by `opened_by` at `opened_at` (else as updated)."""
        d = self.data
        opened_by = d.get("opened_by") or d.get("updated_by") or self.cause.source
        opened_at = self.mapper.time(d.get("opened_at"), "opened_at") or self.at
        by = Actor(opened_by, ActorKind.PERSON)
        return Context(by=by, causation_id=self.cause.causation_id, occurred_at=opened_at)

    def _log_command(self) -> LogIncident:
        d = self.data
        return LogIncident(
            title=d.get("title") or f"{d['ref']} from {self.cause.source}",
            caller=d.get("caller") or "unknown",
            impact=d.get("impact") or DEFAULT_LEVEL,
            urgency=d.get("urgency") or DEFAULT_LEVEL,
            description=d.get("description") or "",
            channel=d.get("channel") or "portal",
            service=d.get("service") or "",
            category=d.get("category") or "",
            subcategory=d.get("subcategory") or "",
            source=self.cause.source,
            external_ref=d["ref"],
        )

    def run(self, incident: Incident, previous: dict[str, Any] | None) -> None:
        self.reopen(incident, previous)
        self.assignment(incident, previous)
        self.priority(incident)
        self.categorisation(incident)
        self.state(incident)

    # -- 2. reopens: one per unit of rise of reopen_count ---------------------------------
    def reopen(self, incident: Incident, previous: dict[str, Any] | None) -> None:
        before = previous.get("reopen_count") if previous else None
        now = self.data.get("reopen_count")
        rises = now - before if before is not None and now is not None and now > before else 0
        if rises > MOST_REOPENS:
            raise InvalidValue(
                f"reopen_count rose by {rises} in one update; at most "
                f"{MOST_REOPENS} reopens are recorded from one snapshot"
            )
        for _ in range(rises):
            self._reopen_once(incident, "reopened at the source")

    def _reopen_once(self, incident: Incident, reason: str) -> None:
        state = incident.state
        if state in OPEN_STATES:
            # The source counted a reopen of a ticket we never saw resolved: resolve it
            # first (the snapshot's code), so that the reopen is legal.
            notes = f"synthesized: {reason} without a resolution in between"
            self.do(incident, Resolve(self._code(), notes))
        if incident.state == IncidentState.RESOLVED:
            self.do(incident, Reopen(reason))
        else:
            # Closed (or cancelled) here, reopened there: the source owns its ticket.
            self.do(incident, RecordSourceReopen(f"{reason} after it was {state}"))

    # -- 3. assignment -------------------------------------------------------------------
    def assignment(self, incident: Incident, previous: dict[str, Any] | None) -> None:
        group, agent = self.data.get("assignment_group"), self.data.get("assignee")
        if not group or (group, agent) == (incident.assignment_group, incident.assignee):
            return  # X -> null keeps X: our lifecycle has no unassignment
        reassignment = _moved(previous.get("assignment_group") if previous else None, group)
        domain_would = _moved(incident.assignment_group, group)
        if incident.state in OPEN_STATES and reassignment == domain_would:
            self.do(incident, Assign(group, agent))
        else:
            # Either the ticket is resolved/closed here (the source may still move it), or
            # the group came back after a null (X -> null -> Y), which the source does not
            # count as a reassignment while our incident still holds X. The event records
            # what the source did.
            self.do(incident, RecordSourceAssignment(group, agent, reassignment))

    # -- 4. priority and categorisation ---------------------------------------------------
    def priority(self, incident: Incident) -> None:
        impact = _given(self.data, "impact", incident.impact)
        urgency = _given(self.data, "urgency", incident.urgency)
        if (impact, urgency) == (incident.impact, incident.urgency):
            return
        if incident.state in OPEN_STATES:
            self.do(incident, Reprioritise(impact, urgency, "changed at the source"))
        else:
            self._note(
                incident,
                f"the source changed impact x urgency from {incident.impact}x"
                f"{incident.urgency} to {impact}x{urgency} while {incident.state}",
            )

    def categorisation(self, incident: Incident) -> None:
        current = (incident.category, incident.subcategory, incident.service)
        wanted = (
            _given(self.data, "category", incident.category),
            _given(self.data, "subcategory", incident.subcategory),
            _given(self.data, "service", incident.service),
        )
        if wanted == current:
            return
        if incident.state in OPEN_STATES:
            self.do(incident, Recategorise(*wanted))
        else:
            self._note(
                incident,
                f"the source changed the categorisation from {current} to "
                f"{wanted} while {incident.state}",
            )

    # -- 5. the state --------------------------------------------------------------------
    def state(self, incident: Incident) -> None:
        target, current = self.data["state"], incident.state
        if target == current:
            self._hold_reason_change(incident)
        elif current in (IncidentState.CLOSED, IncidentState.CANCELLED):
            # Terminal here; only a rise of reopen_count (step 2) brings a ticket back.
            self._note(
                incident,
                f"the source moved the ticket to {target} while it is "
                f"{current} here, without counting a reopen; kept {current}",
            )
        elif current == IncidentState.RESOLVED:
            self._from_resolved(incident, target)
        else:
            self._from_open(incident, target)

    def _hold_reason_change(self, incident: Incident) -> None:
        """On hold there and here: a new reason given is a resume and a hold."""
        given = self.data.get("hold_reason")
        if incident.state == IncidentState.ON_HOLD and given and given != incident.hold_reason:
            self._resume(incident)
            self._hold(incident, given)

    def _from_resolved(self, incident: Incident, target: str) -> None:
        if target == IncidentState.CLOSED:
            self._close(incident)
            return
        # Back to work without a rise of reopen_count: reopening is the only legal way
        # there, so it is done (and counted) rather than dropping the state.
        self._reopen_once(
            incident, f"moved back to {target} at the source without counting a reopen"
        )
        if target != IncidentState.NEW:
            self._from_open(incident, target)

    def _from_open(self, incident: Incident, target: str) -> None:
        """From new, in_progress or on_hold to `target`, the shortest legal way."""
        if target in (IncidentState.NEW, IncidentState.IN_PROGRESS):
            self._back_to_work(incident, target)
        elif target == IncidentState.ON_HOLD:
            self._hold(incident, self.data.get("hold_reason") or DEFAULT_HOLD_REASON)
        elif target == IncidentState.RESOLVED:
            self._resolve(incident)
        elif target == IncidentState.CLOSED:
            self._resolve(incident, synthesized=True)
            self._close(incident)
        elif target == IncidentState.CANCELLED:
            self.do(incident, Cancel("cancelled at the source"))

    def _back_to_work(self, incident: Incident, target: str) -> None:
        if incident.state == IncidentState.ON_HOLD:
            self._resume(incident)  # our lifecycle has no way back to new
        elif incident.state == IncidentState.NEW and target == IncidentState.IN_PROGRESS:
            self.do(incident, Acknowledge())

    # -- helpers -------------------------------------------------------------------------
    def _code(self) -> str:
        return (self.data.get("resolution_code") or "").strip() or DEFAULT_RESOLUTION_CODE

    def _resolve(self, incident: Incident, synthesized: bool = False) -> None:
        notes = (
            "synthesized: closed at the source without a resolution"
            if synthesized
            else "resolved at the source"
        )
        self.do(incident, Resolve(self._code(), notes))

    def _close(self, incident: Incident) -> None:
        self.do(incident, Close(comment="closed at the source"))

    def _hold(self, incident: Incident, reason: str) -> None:
        self.do(incident, Hold(reason))

    def _resume(self, incident: Incident) -> None:
        self.do(incident, Resume())

    def _note(self, incident: Incident, text: str) -> None:
        self.do(incident, Comment(text))


class SourceRecordHandler:
    """incident.snapshot against the ticket's `SourceTicket`: stale, or applied."""

    def __init__(self, source_tz: tzinfo) -> None:
        self.source_tz = source_tz

    def handle(self, work: Work, event: CloudEvent) -> tuple[str, Incident | None, SourceTicket]:
        """Returns (what happened: opened | applied | stale | duplicate, the incident, the
        ticket)."""
        data = event.data
        ticket: SourceTicket | None = work.get(source_ticket_id(event.source, data["ref"]))
        if ticket is not None and ticket.has_seen(event.id):
            return "duplicate", None, ticket
        at = parse_time(data["updated_at"], self.source_tz, "updated_at")
        if ticket is None:
            return self._open(work, event, at)
        if data["mod_count"] <= ticket.mod_count:
            # Not newer than what was applied: ignored, and counted on the ticket.
            ticket.ignored_stale(data["mod_count"], event.id, at=at)
            return "stale", None, ticket
        return self._apply(work, ticket, event, at)

    def _open(
        self, work: Work, event: CloudEvent, at: datetime
    ) -> tuple[str, Incident, SourceTicket]:
        """The ticket's first snapshot: a new incident, and the ticket that mirrors it."""
        data = event.data
        incident = SourceRecordMapper(self.source_tz, work).apply(None, None, data, event)
        work.add(incident)
        ticket = SourceTicket(
            source=event.source,
            ref=data["ref"],
            incident_id=str(incident.id),
            mod_count=data["mod_count"],
            snapshot=remembered(data),
            event_id=event.id,
            at=at,
        )
        work.add(ticket)
        return "opened", incident, ticket

    def _apply(
        self, work: Work, ticket: SourceTicket, event: CloudEvent, at: datetime
    ) -> tuple[str, Incident, SourceTicket]:
        data = event.data
        incident = work.get(UUID(ticket.incident_id))
        mapper = SourceRecordMapper(self.source_tz, work)
        incident = mapper.apply(incident, ticket.snapshot, data, event)
        ticket.applied_snapshot(data["mod_count"], remembered(data), event.id, at=at)
        return "applied", incident, ticket


def _moved(before: str | None, group: str) -> bool:
    """A reassignment: from one group to another, not from none."""
    return before is not None and group != before
