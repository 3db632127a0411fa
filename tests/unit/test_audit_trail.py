"""The audit trail read model, fed by hand: any aggregate type, and quarantine per aggregate."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from uuid import uuid4

import pytest

from infra.sql.database import SqliteDatabase
from projections.audit import audit_trail, incident_timeline
from projections.audit.audit_trail import AuditTrailProjection
from projections.runtime.envelope import Envelope
from projections.runtime.runner import ProjectionRunner

T0 = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)


def envelope(kind: str, aggregate_id: str, version: int, **payload) -> Envelope:
    return Envelope(
        event_id=str(uuid4()),
        type=kind,
        aggregate_id=aggregate_id,
        aggregate_version=version,
        schema_version=1,
        occurred_at=T0 + timedelta(minutes=version),
        actor={"id": "carol", "kind": "person"},
        causation_id=f"req-{version}",
        payload=payload,
        notification_id=version,
        recorded_at=T0 + timedelta(hours=1),
    )


LOGGED = dict(number="INC1", title="t", caller="bob", impact=2, urgency=2, priority="P3")


@pytest.fixture
def runner():
    db = SqliteDatabase(":memory:")
    runner = ProjectionRunner(db, AuditTrailProjection())
    runner.setup()
    yield runner
    db.close()


def feed(runner: ProjectionRunner, *events: Envelope) -> None:
    start = runner.position("test", 0)
    runner.apply_batch("test", 0, start, [(start + i, e) for i, e in enumerate(events)])


def entries(runner: ProjectionRunner, aggregate_id: str) -> list[dict]:
    with runner.db.transaction(read_only=True) as tx:
        return audit_trail.entries(tx, aggregate_id)


def test_an_aggregate_type_nobody_told_it_about_is_recorded_with_its_fields(runner):
    feed(runner, envelope("Problem.Logged", "p1", 1, title="Mail keeps failing", known=False))
    (line,) = entries(runner, "p1")
    assert (line["aggregate_type"], line["event"], line["version"]) == ("Problem", "Logged", 1)
    assert line["changes"] == [
        {"field": "title", "after": "Mail keeps failing"},
        {"field": "known", "after": False},
    ]
    assert (line["occurred_at"], line["recorded_at"]) == (
        "2026-03-02T09:01:00.000000Z",
        "2026-03-02T10:00:00.000000Z",
    )
    assert (line["position"], line["actor"], line["causation_id"]) == (
        1,
        {"id": "carol", "kind": "person"},
        "req-1",
    )
    with runner.db.transaction(read_only=True) as tx:
        assert tx.execute("SELECT COUNT(*) FROM rm_audit_heads").fetchone()[0] == 0


def test_an_incident_event_shows_what_it_changed_in_the_incident_record(runner):
    feed(runner, envelope("Incident.Logged", "i1", 1, **LOGGED))
    feed(runner, envelope("Incident.PutOnHold", "i1", 2, reason="awaiting_caller", note=""))
    logged, held = entries(runner, "i1")
    assert {"field": "state", "before": None, "after": "new"} in logged["changes"]
    assert held["changes"] == [
        {"field": "state", "before": "new", "after": "on_hold"},
        {"field": "hold_reason", "before": None, "after": "awaiting_caller"},
    ]
    assert held["details"] == {"reason": "awaiting_caller", "note": ""}


def test_an_incident_event_it_cannot_fold_quarantines_that_incident_only(runner):
    feed(
        runner,
        envelope("Incident.Logged", "i1", 1, **LOGGED),
        envelope("Incident.Assigned", "i1", 2, agent="erin"),  # no group: cannot be folded
        envelope("SlaPolicy.Created", "s1", 1, spec={"name": "Gold"}),
        envelope("Incident.Commented", "i1", 3, text="waits behind", public=False),
    )
    [held] = runner.quarantined()
    assert (held.aggregate_id, held.version, held.waiting) == ("i1", 2, 2)
    assert [line["version"] for line in entries(runner, "i1")] == [1]
    assert [line["event"] for line in entries(runner, "s1")] == ["Created"]
    with runner.db.transaction(read_only=True) as tx:
        assert [e["event"] for e in incident_timeline.entries(tx, "i1")] == ["Logged"]
