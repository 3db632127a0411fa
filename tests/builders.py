"""Test helpers: build incidents and drive them through commands, in memory or via a desk."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from uuid import uuid4

from eventsourcing.domain import DomainEvent
from eventsourcing.persistence import Mapper, Notification

from domain.incident.commands import (
    Acknowledge,
    Assign,
    Cancel,
    Close,
    Comment,
    Escalate,
    Hold,
    IncidentCommand,
    LogIncident,
    Recategorise,
    RecordSlaBreach,
    RecordSlaWarning,
    Reopen,
    Reprioritise,
    Resolve,
    Resume,
)
from domain.incident.incident import Incident
from domain.shared_kernel.actor import Actor, ActorKind
from domain.shared_kernel.command_context import Context
from domain.shared_kernel.commands import Rules
from domain.shared_kernel.priority import PriorityMatrix
from infra.event_store.orjson_transcoder import OrjsonTranscoder
from infra.event_store.publishing import published, to_envelope
from projections.runtime.envelope import Envelope

MATRIX = PriorityMatrix()
RULES = Rules(MATRIX)
ALICE = Actor("alice")
BOT = Actor("sla-bot", ActorKind.AUTOMATION)


def ctx(
    by: Actor = ALICE, causation_id: str | None = None, expected_version: int | None = None
) -> Context:
    return Context(
        by=by,
        causation_id=causation_id or f"req-{uuid4().hex[:8]}",
        expected_version=expected_version,
    )


def log_command(**overrides) -> LogIncident:
    fields = dict(
        title="Mail is down",
        caller="bob",
        impact=2,
        urgency=2,
        description="Outlook cannot connect",
        channel="email",
        service="mail",
        category="software",
        subcategory="email",
    )
    fields.update(overrides)
    return LogIncident(**fields)


def new_incident(
    number: str = "INC0001001", matrix: PriorityMatrix = MATRIX, by: Actor = ALICE, **overrides
) -> Incident:
    """A freshly logged incident (with its Logged event still pending)."""
    return log_command(**overrides).run(number, ctx(by, "req-log"), Rules(matrix))


def drive(
    incident: Incident,
    commands: Iterable[IncidentCommand],
    matrix: PriorityMatrix = MATRIX,
    by: Actor = ALICE,
) -> Incident:
    """Run commands on an in-memory incident, each with its own causation id."""
    for step, command in enumerate(commands, start=1):
        command.run(incident, ctx(by, f"req-{step}"), Rules(matrix))
    return incident


def incident_through(commands: Sequence[IncidentCommand], **overrides) -> Incident:
    return drive(new_incident(**overrides), commands)


# A path through every command, so that every event class occurs at least once.
FULL_LIFECYCLE: tuple[IncidentCommand, ...] = (
    Assign(group="service-desk", agent="carol"),
    RecordSlaWarning(
        metric="respond",
        threshold=50,
        policy_id="p-1",
        policy_version=1,
        due_at=datetime(2026, 1, 5, 9, 30, tzinfo=timezone.utc),
    ),
    RecordSlaBreach(
        metric="respond",
        policy_id="p-1",
        policy_version=1,
        due_at=datetime(2026, 1, 5, 10, 0, tzinfo=timezone.utc),
    ),
    Acknowledge(),
    Comment(text="looking into it", public=True),
    Hold(reason="awaiting_caller", note="asked for a screenshot"),
    Resume(),
    Reprioritise(impact=1, urgency=1, reason="whole floor affected"),
    Recategorise(category="network", subcategory="dns", service="mail"),
    Escalate(kind="functional", group="messaging", reason="needs exchange admin"),
    Assign(group="messaging", agent="dave"),
    Escalate(kind="functional", reason="vendor bug"),
    Escalate(kind="hierarchical", reason="CEO affected"),
    Resolve(code="workaround", notes="restarted the connector"),
    Reopen(reason="came back"),
    Assign(group="network", agent="erin"),
    Resolve(code="fixed", notes="dns record corrected"),
    Close(satisfaction=4, comment="thanks"),
    Comment(text="post-closure note"),
)


def all_incident_event_classes() -> set[type]:
    """Concrete event classes nested in Incident that it can emit.

    Left out: the abstract base `Incident.Event`, and the library's default `Created`, which
    the `Logged` event replaces as the creation event.
    """
    return {
        value
        for name, value in vars(Incident).items()
        if inspect.isclass(value)
        and issubclass(value, DomainEvent)
        and name not in ("Event", "Created")
    }


def lifecycle_events() -> list[DomainEvent]:
    """Every event of a full lifecycle plus a cancelled incident, in order per incident."""
    full = incident_through(FULL_LIFECYCLE)
    cancelled = incident_through([Cancel(reason="duplicate")], number="INC0001002")
    return [*full.collect_events(), *cancelled.collect_events()]


def mapper() -> Mapper:
    return Mapper(transcoder=OrjsonTranscoder())


def envelopes_of(
    events: Sequence[DomainEvent], first_id: int = 1, event_mapper: Mapper | None = None
) -> list[Envelope]:
    """The published envelopes of events, as the in-process feed would deliver them."""
    event_mapper = event_mapper or mapper()
    result = []
    for offset, domain_event in enumerate(events):
        stored = event_mapper.to_stored_event(domain_event)
        notification = Notification(
            id=first_id + offset,
            originator_id=stored.originator_id,
            originator_version=stored.originator_version,
            topic=stored.topic,
            state=stored.state,
        )
        result.append(published(to_envelope(event_mapper, notification)))
    return result


def replay(events: Sequence[DomainEvent]) -> Incident:
    aggregate = None
    for domain_event in events:
        aggregate = domain_event.mutate(aggregate)
    assert aggregate is not None
    return aggregate
