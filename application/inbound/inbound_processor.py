"""The one inbound code path: raw bytes in, applied | duplicate | rejected(reason) out.

`InboundProcessor.process(raw)` (HTTP, one message) and `process_batch(raws)` (the Kafka
consumer, one poll) are the same function: `process` is a batch of one.

A batch is applied in as few transactions as possible:
1. every message is parsed and validated (`envelope.parse`); a failure is `rejected`;
2. messages are grouped into lanes by what they touch (one ticket: source + ref; one alert
   fingerprint: service + check) and each lane is applied in arrival order, as commands, in
   one unit of work of the desk (application/desk/unit_of_work.py);
3. every touched aggregate, and one `InboundReceipt` per applied alert, are saved in ONE
   commit, i.e. one transaction. (A snapshot needs no receipt: its ticket's `SourceTicket`
   records every message it saw.)

A message that breaks a business rule is rejected alone: the lane rolls back to its
savepoint, the lane's earlier messages are re-applied, then the lane goes on. If the batch's
save fails on a version (a duplicate delivery: its receipt or ticket already moved on; or
another writer changed an incident meanwhile), the batch falls back to one transaction per
message, each retried on fresh state (the desk's one retry policy) until it is applied,
found to be a duplicate, or rejected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import tzinfo
from typing import Any, Protocol
from uuid import UUID
from zoneinfo import ZoneInfo

from eventsourcing.persistence import IntegrityError
from prometheus_client import CollectorRegistry, Counter

from application.desk.service_desk import ServiceDesk
from application.desk.unit_of_work import UnitOfWork
from application.inbound.alert_mapper import AlertHandler, Work
from application.inbound.inbound_message import MAX_BYTES, CloudEvent, Outcome, Rejected
from application.inbound.source_record_mapper import SourceRecordHandler
from domain.inbound.alert_fingerprint import fingerprint_id
from domain.inbound.inbound_receipt import InboundReceipt, receipt_id
from domain.inbound.source_ticket import source_ticket_id
from domain.incident.incident import Incident
from domain.shared_kernel.errors import DomainError, IllegalTransition

log = logging.getLogger(__name__)


def _lane(event: CloudEvent) -> UUID:
    """What a message's lane is keyed by: the aggregate it starts from, so that two lanes
    never share one (the ids, unlike joined text, cannot collide)."""
    if event.type == "incident.snapshot":
        return source_ticket_id(event.source, event.data["ref"])
    return fingerprint_id(event.data["service"], event.data["check"])


class InboundParser(Protocol):
    def __call__(self, raw: bytes, max_bytes: int, source_tz: tzinfo) -> CloudEvent:
        """Bytes -> a validated CloudEvent, or Rejected saying why not."""
        ...


class InboundSettings(Protocol):
    """The settings a processor is made from (infra.settings.Settings has them)."""

    inbound_source_timezone: str
    inbound_alert_auto_resolve: bool
    inbound_max_bytes: int


class InboundProcessor:
    def __init__(
        self,
        desk: ServiceDesk,
        *,
        parse: InboundParser,
        source_timezone: str | tzinfo = "UTC",
        alert_auto_resolve: bool = False,
        max_bytes: int = MAX_BYTES,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.desk, self.max_bytes, self.parse = desk, max_bytes, parse
        tz = ZoneInfo(source_timezone) if isinstance(source_timezone, str) else source_timezone
        self.source_records = SourceRecordHandler(tz)
        self.alerts = AlertHandler(alert_auto_resolve)
        self.registry = registry or CollectorRegistry()
        self.messages = _messages_counter(self.registry)
        self.stale = _stale_counter(self.registry)

    @classmethod
    def from_settings(
        cls, desk: ServiceDesk, settings: InboundSettings, *, parse: InboundParser
    ) -> InboundProcessor:
        return cls(
            desk,
            parse=parse,
            source_timezone=settings.inbound_source_timezone,
            alert_auto_resolve=settings.inbound_alert_auto_resolve,
            max_bytes=settings.inbound_max_bytes,
        )

    # -- the one code path ---------------------------------------------------------------
    def process(self, raw: bytes) -> Outcome:
        return self.process_batch([raw])[0]

    def process_batch(self, raws: Sequence[bytes]) -> list[Outcome]:
        events, outcomes = self._parsed(raws)
        if events:
            outcomes.update(self._apply(events))
        ordered = [outcomes[index] for index in range(len(raws))]
        self._count(ordered)
        return ordered

    def _parsed(self, raws: Sequence[bytes]) -> tuple[dict[int, CloudEvent], dict[int, Outcome]]:
        """The messages to apply, by index, and the outcomes of the others: rejected, or
        duplicate (the same message twice in one batch)."""
        events: dict[int, CloudEvent] = {}
        outcomes: dict[int, Outcome] = {}
        seen: set[UUID] = set()
        for index, raw in enumerate(raws):
            parsed = self._parse(raw)
            if isinstance(parsed, Outcome):
                outcomes[index] = parsed
            elif _first_copy(parsed, seen):
                events[index] = parsed
            else:
                outcomes[index] = self._outcome(parsed, "duplicate")
        return events, outcomes

    def _parse(self, raw: bytes) -> CloudEvent | Outcome:
        try:
            return self.parse(raw, self.max_bytes, self.source_records.source_tz)
        except Rejected as rejected:
            return self._rejected(rejected)

    def _count(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            self.messages.labels(outcome.type or "", outcome.status, outcome.effect or "").inc()
            if outcome.effect == "stale":
                self.stale.labels(outcome.source or "").inc()

    # -- applying ------------------------------------------------------------------------
    def _apply(self, events: dict[int, CloudEvent]) -> dict[int, Outcome]:
        try:
            return self._apply_together(events)
        except IntegrityError:
            log.info("batch of %d hit a taken version; applying one by one", len(events))
            return {i: self._apply_alone(e) for i, e in events.items()}

    def _apply_together(self, events: dict[int, CloudEvent]) -> dict[int, Outcome]:
        lanes: dict[UUID, list[int]] = {}
        for index, event in events.items():
            lanes.setdefault(_lane(event), []).append(index)
        outcomes: dict[int, Outcome] = {}
        with self.desk.unit_of_work() as work:
            for indexes in lanes.values():
                outcomes.update(self._apply_lane(work, [(i, events[i]) for i in indexes]))
            work.commit()
        return outcomes

    def _apply_lane(
        self, work: UnitOfWork, lane: list[tuple[int, CloudEvent]]
    ) -> dict[int, Outcome]:
        outcomes: dict[int, Outcome] = {}
        done: list[tuple[int, CloudEvent]] = []
        savepoint = work.savepoint()
        for index, event in lane:
            try:
                outcomes[index] = self._handle(work, event)
                done.append((index, event))
            except DomainError as error:
                outcomes[index] = self._rejected(_domain_rejection(error), event)
                work.rollback(savepoint)  # undo the partial change, re-apply what went before
                outcomes.update({i: self._handle(work, earlier) for i, earlier in done})
        return outcomes

    def _apply_alone(self, event: CloudEvent) -> Outcome:
        return self.desk.retrying(lambda: self._apply_once(event), f"message {event.id}")

    def _apply_once(self, event: CloudEvent) -> Outcome:
        if self._received(event):
            return self._outcome(event, "duplicate")
        with self.desk.unit_of_work() as work:
            try:
                outcome = self._handle(work, event)
            except DomainError as error:
                return self._rejected(_domain_rejection(error), event)
            work.commit()
        return outcome

    def _received(self, event: CloudEvent) -> bool:
        if event.type == "incident.snapshot":  # the ticket is the receipt of its snapshots
            ticket = self.desk.find(source_ticket_id(event.source, event.data["ref"]))
            return ticket is not None and ticket.has_seen(event.id)
        return self.desk.find(receipt_id(event.source, event.id)) is not None

    def _handle(self, work: Work, event: CloudEvent) -> Outcome:
        if event.type == "incident.snapshot":
            return self._snapshot(work, event)
        return self._alert(work, event)

    def _snapshot(self, work: Work, event: CloudEvent) -> Outcome:
        effect, _, ticket = self.source_records.handle(work, event)
        if effect == "duplicate":
            return self._outcome(event, "duplicate", incident_id=ticket.incident_id)
        return self._outcome(event, "applied", effect=effect, incident_id=ticket.incident_id)

    def _alert(self, work: Work, event: CloudEvent) -> Outcome:
        """An alert's effect, recorded with its receipt (a snapshot's is its ticket)."""
        incident: Incident | None
        if event.type == "alert.fired":
            effect, incident = self.alerts.fired(work, event)
        else:
            effect, incident = self.alerts.resolved(work, event)
        incident_id = str(incident.id) if incident is not None else None
        work.add(_receipt(event, effect, incident_id))
        return self._outcome(event, "applied", effect=effect, incident_id=incident_id)

    # -- outcomes ------------------------------------------------------------------------
    @staticmethod
    def _outcome(event: CloudEvent, status: str, **fields: Any) -> Outcome:
        return Outcome(status, source=event.source, event_id=event.id, type=event.type, **fields)

    @staticmethod
    def _rejected(rejected: Rejected, event: CloudEvent | None = None) -> Outcome:
        ids = dict(source=event.source, event_id=event.id, type=event.type) if event else {}
        return Outcome("rejected", reason=str(rejected), kind=rejected.kind, **ids)


def _first_copy(event: CloudEvent, seen: set[UUID]) -> bool:
    key = receipt_id(event.source, event.id)
    first = key not in seen
    seen.add(key)
    return first


def _receipt(event: CloudEvent, effect: str, incident_id: str | None) -> InboundReceipt:
    return InboundReceipt(
        source=event.source,
        event_id=event.id,
        type=event.type,
        subject=event.subject,
        outcome=effect,
        incident_id=incident_id,
    )


def _messages_counter(registry: CollectorRegistry) -> Counter:
    return Counter(
        "itsm_inbound_messages",
        "Inbound messages by outcome",
        ["type", "status", "effect"],
        registry=registry,
    )


def _stale_counter(registry: CollectorRegistry) -> Counter:
    return Counter(
        "itsm_inbound_stale_snapshots",
        "incident.snapshot messages ignored as stale, by source",
        ["source"],
        registry=registry,
    )


def _domain_rejection(error: DomainError) -> Rejected:
    kind = "illegal-transition" if isinstance(error, IllegalTransition) else "invalid-value"
    return Rejected(kind, str(error))


RawHandler = Callable[[bytes], Outcome]
