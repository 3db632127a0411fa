"""The event store's mapper, sealing personal data as events are recorded.

The fields a practice declares personal (domain/shared_kernel/personal_data.py) are
replaced by tokens of their subject's key (infra/privacy/vault.py) before the event is
encoded, so the stored bytes, the hash chain over them, the snapshots and what the relay
publishes hold only ciphertext. Reading leaves the tokens as they are: aggregates, read
models and Kafka consumers carry them, and only the API opens them for its callers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder
from eventsourcing.utils import get_topic

from application.desk.practice import Practice
from domain.shared_kernel.actor import Actor, ActorKind
from domain.shared_kernel.personal_data import PersonalData
from infra.privacy.vault import Vault


class PersonalDataMapper(Mapper[UUID]):
    """`opens`: reading opens the tokens (the desk's aggregates, which its commands decide
    on); without it they stay sealed (what the feeds publish)."""

    def __init__(
        self,
        transcoder: Transcoder,
        vault: Vault,
        practices: Sequence[Practice],
        opens: bool = True,
    ):
        super().__init__(transcoder)
        self.vault, self.opens = vault, opens
        self.events: dict[str, tuple[PersonalData, tuple[str, ...]]] = {}
        self.snapshots: dict[str, PersonalData] = {}
        for practice in practices:
            for aggregate, declared in practice.personal_data.items():
                self._declare(declared, aggregate)

    def _declare(self, declared: PersonalData, aggregate: type) -> None:
        topic = get_topic(aggregate)
        self.snapshots[topic] = declared
        for name in (*declared.events, *declared.people):
            self.events[f"{topic}.{name}"] = (declared, declared.events.get(name, ()))

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        topic = get_topic(domain_event.__class__)
        state = dict(vars(domain_event))
        originator_id = state.pop("originator_id")
        originator_version = state.pop("originator_version")
        class_version = getattr(type(domain_event), "class_version", 1)
        if class_version > 1:
            state["class_version"] = class_version
        self._seal(topic, str(originator_id), state)
        self._seal_actor(state)
        return StoredEvent(
            originator_id=originator_id,
            originator_version=originator_version,
            topic=topic,
            state=self.transcoder.encode(state),
        )

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        domain_event = super().to_domain_event(stored_event)
        if self.opens and (b"pii:1:" in stored_event.state or b"pid:1:" in stored_event.state):
            state = vars(domain_event)
            for name, value in state.items():
                state[name] = self.vault.reveal(value)
        return domain_event

    def _seal(self, topic: str, aggregate_id: str, state: dict[str, Any]) -> None:
        declared = self.events.get(topic)
        if declared is not None:
            subject_named = declared[0].subject_field in declared[1]
            self._seal_fields(declared[1], aggregate_id, state, subject_named, declared[0])
            name = topic.rsplit(".", 1)[-1]
            self._seal_people(declared[0].people.get(name, ()), state)
            return
        snapshot = self.snapshots.get(str(state.get("topic")))
        if snapshot is not None and isinstance(state.get("state"), dict):
            inner = dict(state["state"])
            self._seal_fields(snapshot.snapshot, aggregate_id, inner, False, snapshot)
            self._seal_people(snapshot.snapshot_people, inner)
            state["state"] = inner

    def _seal_actor(self, state: dict[str, Any]) -> None:
        """A person who acted is recorded as their token; automations and systems by name."""
        by = state.get("by")
        if isinstance(by, Actor) and by.kind == ActorKind.PERSON and _clear(by.id):
            state["by"] = Actor(self.vault.person(by.id), by.kind)

    def _seal_people(self, fields: tuple[str, ...], state: dict[str, Any]) -> None:
        """Each field naming a person, by its path: `snapshot.assignee` (one inside a
        mapping), `design.team[]` (each of a list), `plan.raci[kind=person].party` (in the
        list's entries whose `kind` is `person`)."""
        for path in fields:
            self._seal_path(path.split("."), state)

    def _seal_path(self, segments: list[str], state: dict[str, Any]) -> None:
        # Containers are copied before they change: the event object keeps its own.
        name, _, where = segments[0].partition("[")
        value, rest = state.get(name), segments[1:]
        if where and isinstance(value, list):
            state[name] = [self._sealed_entry(e, where.rstrip("]"), rest) for e in value]
        elif not where and rest and isinstance(value, dict):
            inner = dict(value)
            self._seal_path(rest, inner)
            state[name] = inner
        elif not where and not rest and isinstance(value, str) and _clear(value):
            state[name] = self.vault.person(value)

    def _sealed_entry(self, entry: Any, condition: str, rest: list[str]) -> Any:
        if not rest:
            return self.vault.person(entry) if isinstance(entry, str) and _clear(entry) else entry
        key, _, wanted = condition.partition("=")
        if not isinstance(entry, dict) or (key and entry.get(key) != wanted):
            return entry
        inner = dict(entry)
        self._seal_path(rest, inner)
        return inner

    def _seal_fields(
        self,
        fields: tuple[str, ...],
        aggregate_id: str,
        state: dict[str, Any],
        subject_named: bool,
        declared: PersonalData,
    ) -> None:
        named = state.get(declared.subject_field)
        if subject_named and isinstance(named, str) and not named.startswith("pii:1:"):
            # The event that names the subject (an incident's Logged, its caller).
            self.vault.enrol(aggregate_id, self.vault.current(declared.subject_field, named))
        if not fields:
            return
        subject = self.vault.subject_of(aggregate_id)
        if subject is None:  # an aggregate recorded before personal data were sealed
            return
        for name in fields:
            value = state.get(name)
            if isinstance(value, str) and value and not value.startswith("pii:1:"):
                state[name] = self.vault.seal(subject, value)


def _clear(value: str) -> bool:
    return bool(value) and not value.startswith(("pii:1:", "pid:1:"))
