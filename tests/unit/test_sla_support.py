"""Helpers for the SLA tests: envelopes of policies and of incidents at chosen instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from domain.incident.incident import Incident
from domain.shared_kernel.actor import Actor, ActorKind
from domain.shared_kernel.priority import PriorityMatrix
from domain.sla.sla_policy import normalise_spec
from infra.event_store.publishing import event_id
from infra.sql.database import SqliteDatabase
from projections.runtime.envelope import Envelope
from projections.runtime.runner import ProjectionRunner
from projections.sla.sla_clocks import CLOCK_COLUMNS, SlaClocksProjection
from tests.builders import envelopes_of

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
MATRIX = PriorityMatrix()
ALICE = Actor("alice")
SCHEDULER = Actor("sla-scheduler", ActorKind.AUTOMATION)
H = 3600


def spec(**overrides: Any) -> dict:
    base = {
        "name": "Standard",
        "targets": {
            "respond": {"P1": 900, "P2": 1800, "P3": 3600, "P4": 7200},
            "resolve": {"P1": 4 * H, "P2": 8 * H, "P3": 24 * H, "P4": 72 * H},
        },
    }
    base.update(overrides)
    return normalise_spec(base)


def policy_envelope(
    policy_spec: dict,
    policy_id: str = "policy-1",
    version: int = 1,
    at: datetime = T0 - timedelta(days=1),
    actor: str = "manager",
    causation: str = "req-policy",
) -> Envelope:
    return Envelope(
        event_id=event_id(policy_id, version),
        type="SlaPolicy.Created" if version == 1 else "SlaPolicy.Revised",
        aggregate_id=policy_id,
        aggregate_version=version,
        schema_version=1,
        occurred_at=at,
        actor={"id": actor, "kind": "person"},
        causation_id=causation,
        payload={"spec": policy_spec},
        recorded_at=at,
    )


class Ticket:
    """An Incident driven at chosen instants; `step` returns the envelopes of new events."""

    def __init__(self, at: datetime = T0, impact: int = 2, urgency: int = 2, **fields) -> None:
        self.incident = Incident.log(
            number=f"INC{uuid4().hex[:7]}",
            title="Mail down",
            caller="bob",
            impact=impact,
            urgency=urgency,
            matrix=MATRIX,
            by=ALICE,
            causation_id="req-log",
            at=at,
            **fields,
        )
        self._pending = self.incident.collect_events()

    @property
    def id(self) -> str:
        return str(self.incident.id)

    def do(self, method: str, *args, at: datetime, by: Actor = ALICE, **kwargs) -> Ticket:
        extra = {"matrix": MATRIX} if method == "reprioritise" else {}
        getattr(self.incident, method)(
            *args, by=by, causation_id=f"req-{method}", at=at, **extra, **kwargs
        )
        self._pending += self.incident.collect_events()
        return self

    def envelopes(self) -> list[Envelope]:
        out, self._pending = envelopes_of(self._pending), []
        return out


class Clocks:
    """A clock read model in an in-memory SQLite database, fed by hand."""

    def __init__(self, projection: SlaClocksProjection | None = None) -> None:
        self.db = SqliteDatabase(":memory:")
        self.runner = ProjectionRunner(self.db, projection or SlaClocksProjection())
        self.runner.setup()
        self.position = 0

    def feed(self, *batches: Envelope | list[Envelope] | Ticket) -> Clocks:
        for batch in batches:
            if isinstance(batch, Ticket):
                batch = batch.envelopes()
            elif isinstance(batch, Envelope):
                batch = [batch]
            records = [(self.position + i, e) for i, e in enumerate(batch)]
            if records:
                self.position = self.runner.apply_batch("test", 0, self.position, records)
        return self

    def clock(self, ticket: Ticket | str, metric: str) -> dict | None:
        ticket_id = ticket.id if isinstance(ticket, Ticket) else ticket
        with self.db.transaction(read_only=True) as tx:
            row = tx.execute(
                f"SELECT {', '.join(CLOCK_COLUMNS)} FROM sla_clocks"
                " WHERE ticket_id = %s AND metric = %s",
                (ticket_id, metric),
            ).fetchone()
        return dict(zip(CLOCK_COLUMNS, row, strict=True)) if row else None

    def all(self) -> list[dict]:
        with self.db.transaction(read_only=True) as tx:
            rows = tx.execute(f"SELECT {', '.join(CLOCK_COLUMNS)} FROM sla_clocks").fetchall()
        return [dict(zip(CLOCK_COLUMNS, r, strict=True)) for r in rows]


def at(hours: float = 0, minutes: float = 0, seconds: float = 0) -> datetime:
    return T0 + timedelta(hours=hours, minutes=minutes, seconds=seconds)
