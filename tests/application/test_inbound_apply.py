"""The one inbound code path on a real SQLite event store: atomic, idempotent, batched."""

from __future__ import annotations

from uuid import UUID

import orjson
import pytest
from eventsourcing.persistence import IntegrityError

from application.inbound.inbound_processor import InboundProcessor
from application.inbound.source_record_mapper import SourceRecordHandler
from domain.inbound.source_ticket import source_ticket_id
from domain.incident.commands import Comment
from domain.shared_kernel.actor import Actor
from domain.shared_kernel.command_context import Context
from infra.messaging.cloudevents import cloudevent, parse
from tests.unit.test_inbound_source_records import snap

SOURCE = "servicenow://acme"


def msg(data: dict, id_: str | None = None, source: str = SOURCE) -> bytes:
    return cloudevent(
        "incident.snapshot", source, id_ or f"{data['ref']}-{data['mod_count']}", data["ref"], data
    )


def alert(kind: str, id_: str, **data) -> bytes:
    body = {"service": "mail", "check": "smtp", "summary": "SMTP down", **data}
    return cloudevent(f"alert.{kind}", "prometheus://am", id_, "mail/smtp", body)


@pytest.fixture
def processor(desk):
    return InboundProcessor(desk, parse=parse)


def stored(desk) -> int:
    return desk.stored_events()


def test_a_batch_of_snapshots_is_applied_in_one_transaction(processor, desk):
    calls = []
    real_save = desk.commits.save
    desk.commits.save = lambda *aggs: calls.append(len(aggs)) or real_save(*aggs)
    batch = [
        msg(snap(m, "in_progress" if m else "new", ref=f"INC{n}"))
        for n in range(3)
        for m in range(3)
    ]
    outcomes = processor.process_batch(batch)
    assert [o.status for o in outcomes] == ["applied"] * 9
    assert [o.effect for o in outcomes[:3]] == ["opened", "applied", "applied"]
    # the incidents, their source tickets and the incident number sequence
    assert len(calls) == 1 and calls[0] == 3 * 2 + 1


def test_the_same_message_twice_is_applied_once(processor, desk):
    first = processor.process(msg(snap(0)))
    before = stored(desk)
    again = processor.process(msg(snap(0)))
    assert (first.status, again.status) == ("applied", "duplicate")
    assert stored(desk) == before
    # ... also within one batch, and when a redelivered batch mixes old and new messages
    outcomes = processor.process_batch(
        [
            msg(snap(1, "in_progress")),
            msg(snap(1, "in_progress")),
            msg(snap(0)),
            msg(snap(2, "resolved")),
        ]
    )
    assert [o.status for o in outcomes] == ["applied", "duplicate", "duplicate", "applied"]
    incident = desk.get(UUID(first.incident_id))
    assert incident.state == "resolved"


def test_a_stale_snapshot_delivered_again_is_a_duplicate_and_records_nothing(processor, desk):
    processor.process_batch([msg(snap(0)), msg(snap(2, "in_progress"))])
    late = msg(snap(1, "in_progress"))
    assert processor.process(late).effect == "stale"
    before = stored(desk)
    again = processor.process(late)
    assert (again.status, again.effect) == ("duplicate", None)
    assert stored(desk) == before
    ticket = desk.repository.get(source_ticket_id(SOURCE, "INC0000045"))
    assert (ticket.applied, ticket.stale) == (2, 1)


def test_a_rejected_message_leaves_its_lane_and_the_batch_intact(processor, desk, monkeypatch):
    from domain.shared_kernel.errors import IllegalTransition

    real = SourceRecordHandler.handle

    def refuse_mod_2(self, work, event):
        if event.data["mod_count"] == 2:
            incident = work.get(UUID(work.get(source_ticket_id(SOURCE, "INC0000045")).incident_id))
            incident.comment("half-applied change", False, Actor("x"), "c")
            raise IllegalTransition("refused for the test")
        return real(self, work, event)

    monkeypatch.setattr(SourceRecordHandler, "handle", refuse_mod_2)
    outcomes = processor.process_batch(
        [
            msg(snap(0)),
            msg(snap(1, "in_progress")),
            msg(snap(2, "resolved")),
            msg(snap(3, "on_hold", hold_reason="awaiting_vendor")),
            msg(snap(0, ref="INC0000046")),
        ]
    )
    assert [o.status for o in outcomes] == ["applied", "applied", "rejected", "applied", "applied"]
    assert outcomes[2].kind == "illegal-transition" and outcomes[2].http_status == 409
    incident = desk.get(UUID(outcomes[0].incident_id))
    names = [type(e).__name__ for e in desk.events.get(incident.id)]
    assert names == ["Logged", "Acknowledged", "PutOnHold"]  # no trace of the rejected one
    # a rejected message has no receipt: sent again (fixed), it is applied
    monkeypatch.setattr(SourceRecordHandler, "handle", real)
    assert processor.process(msg(snap(2, "resolved"))).effect == "stale"


def test_a_taken_version_falls_back_to_one_transaction_per_message(processor, desk):
    opened = processor.process(msg(snap(0)))
    incident_id = UUID(opened.incident_id)
    real_get = desk.repository.get
    raced = []

    def get_then_race(aggregate_id, **kw):
        aggregate = real_get(aggregate_id, **kw)
        if aggregate_id == incident_id and not raced:  # an agent comments meanwhile
            raced.append(1)
            desk.execute(incident_id, Comment(text="on it"), Context(Actor("alice"), "r1"))
        return aggregate

    desk.repository.get = get_then_race
    saves = []
    real_save = desk.commits.save

    def save(*aggs):
        try:
            return real_save(*aggs)
        except IntegrityError:
            saves.append("conflict")
            raise

    desk.commits.save = save
    outcomes = processor.process_batch(
        [msg(snap(1, "in_progress")), msg(snap(0, ref="INC0000099"))]
    )
    assert saves == ["conflict"]
    assert [o.status for o in outcomes] == ["applied", "applied"]
    names = [type(e).__name__ for e in desk.events.get(incident_id)]
    assert names == ["Logged", "Commented", "Acknowledged"]


def test_stale_snapshots_are_counted_on_the_ticket_and_in_the_metrics(processor, desk):
    processor.process_batch(
        [
            msg(snap(0)),
            msg(snap(3, "in_progress")),
            msg(snap(2, "resolved")),
            msg(snap(3, "closed"), "dup-mod"),
        ]
    )
    ticket = desk.repository.get(source_ticket_id(SOURCE, "INC0000045"))
    assert (ticket.stale, ticket.applied, ticket.mod_count) == (2, 2, 3)
    assert (
        processor.registry.get_sample_value(
            "itsm_inbound_stale_snapshots_total", {"source": SOURCE}
        )
        == 2
    )


def test_alerts_through_the_processor(desk):
    processor = InboundProcessor(desk, parse=parse, alert_auto_resolve=True)
    outcomes = processor.process_batch(
        [alert("fired", "1"), alert("fired", "2"), alert("resolved", "3"), alert("fired", "4")]
    )
    assert [o.effect for o in outcomes] == ["opened", "attached", "resolved", "reopened"]
    assert len({o.incident_id for o in outcomes}) == 1
    rejected = processor.process(alert("fired", "5", check="imap", summary="   "))
    assert (rejected.status, rejected.kind, rejected.http_status) == (
        "rejected",
        "invalid-value",
        422,
    )


def test_rejections_write_nothing(processor, desk):
    before = stored(desk)
    raws = [
        b"nope",
        orjson.dumps({"specversion": "1.0"}),
        b"x" * (1024 * 1024 + 1),
        cloudevent("ticket.deleted", SOURCE, "9", "x", {}),
    ]
    outcomes = processor.process_batch(raws)
    assert [o.kind for o in outcomes] == [
        "malformed",
        "not-a-cloudevent",
        "too-large",
        "unknown-type",
    ]
    assert [o.http_status for o in outcomes] == [400, 422, 413, 422]
    assert stored(desk) == before


def test_alert_lanes_whose_joined_names_collide_stay_apart(processor, desk):
    """service "a\\nb" + check "c" and service "a" + check "b\\nc" join to the same text but
    are two fingerprints: a refusal in one lane leaves the other's incident and number."""
    batch = [
        alert("fired", "a1", service="a\nb", check="c"),
        alert("fired", "a2", service="a", check="b\nc"),
        alert("resolved", "a3", service="a", check="b\nc", auto_resolve=True, resolution_code=" "),
    ]
    outcomes = processor.process_batch(batch)
    assert [o.status for o in outcomes[:2]] == ["applied", "applied"]
    for outcome in outcomes[:2]:
        assert desk.find(UUID(outcome.incident_id)) is not None
