"""A message with a value the domain refuses is rejected alone; the batch goes on.

Each poison sits between two good messages of other tickets in one `process_batch` (one
Kafka poll): the good ones are applied, the poison one is `rejected(invalid-value)` (a dead
letter naming why), nothing of it is recorded, and no exception leaves the processor.
"""

from __future__ import annotations

from uuid import UUID

import orjson
import pytest

from application.inbound.inbound_processor import InboundProcessor
from domain.inbound.source_ticket import source_ticket_id
from infra.messaging.cloudevents import cloudevent, parse
from tests.unit.test_inbound_source_records import snap

SOURCE = "servicenow://acme"


def msg(data: dict, id_: str | None = None, time: str | None = None) -> bytes:
    return cloudevent(
        "incident.snapshot",
        SOURCE,
        id_ or f"{data['ref']}-{data['mod_count']}",
        data["ref"],
        data,
        time=time,
    )


def alert(id_: str, time: str | None = None, **data) -> bytes:
    body = {"service": "mail", "check": "smtp", "summary": "SMTP down", **data}
    return cloudevent("alert.fired", "prometheus://am", id_, "mail/smtp", body, time=time)


def raw_snapshot(text: str) -> bytes:
    """A message whose data is given as JSON text: numbers beyond what Python writes."""
    event = orjson.loads(msg(snap(0, ref="RAW")))
    event["data"] = "@DATA@"
    return orjson.dumps(event).replace(b'"@DATA@"', text.encode())


@pytest.fixture
def processor(desk):
    return InboundProcessor(desk, parse=parse)


POISON = {
    "time year 226": msg(snap(0, ref="P"), time="0226-11-29T10:00:00Z"),
    "time year 9999": alert("a-9999", time="9999-12-31T23:59:59Z"),
    "time 30 February": msg(snap(0, ref="P"), time="2016-02-30T10:00:00Z"),
    "updated_at month 13": msg(snap(0, ref="P", at="2016-13-01T10:00:00")),
    "updated_at 30 February": msg(snap(0, ref="P", at="2016-02-30T10:00:00")),
    "updated_at hour 25": msg(snap(0, ref="P", at="2016-03-01T25:00:00")),
    "updated_at offset +25:00": msg(snap(0, ref="P", at="2016-03-01T10:00:00+25:00")),
    "updated_at year 9999": msg(snap(0, ref="P", at="9999-12-31T23:59:59Z")),
    "opened_at day 0": msg(snap(0, ref="P", opened_at="2016-03-00T09:00:00")),
    "resolved_at month 0": msg(snap(0, ref="P", resolved_at="2016-00-10T09:00:00")),
    "closed_at before 1970": msg(snap(0, ref="P", closed_at="1969-12-31T23:00:00Z")),
    "title NUL": msg(snap(0, ref="P", title="a\u0000b")),
    "caller escape": msg(snap(0, ref="P", caller="bob\u001b[2J")),
    "alert summary NUL": alert("a-nul", summary="disk\u0000full"),
    "alert source NUL": cloudevent(
        "alert.fired",
        "prom\u0000etheus",
        "a-src",
        "mail/smtp",
        {"service": "mail", "check": "smtp", "summary": "x"},
    ),
    "mod_count beyond 2^53": msg(snap(2**60, ref="P")),
    "mod_count 1e29": raw_snapshot(
        orjson.dumps(snap(0, ref="RAW"))
        .decode()
        .replace('"mod_count":0', '"mod_count":100000000000000000000000000000')
    ),
}


@pytest.mark.parametrize("poison", list(POISON.values()), ids=list(POISON))
def test_a_poison_message_is_rejected_alone_in_its_batch(processor, desk, poison):
    outcomes = processor.process_batch([msg(snap(0, ref="G1")), poison, msg(snap(0, ref="G2"))])
    assert [o.status for o in outcomes] == ["applied", "rejected", "applied"]
    assert outcomes[1].kind == "invalid-value" and outcomes[1].http_status == 422
    assert outcomes[1].reason
    before = desk.stored_events()
    assert processor.process(poison).kind == "invalid-value"  # on its own, too
    assert desk.stored_events() == before


@pytest.mark.parametrize(
    "field, value",
    [
        ("opened_at", "2012-00-10 09:00"),
        ("updated_at", "2016-02-30T10:00:00"),
        ("resolved_at", "2016-13-01T10:00:00"),
        ("closed_at", "2016-03-01T24:30:00"),
    ],
)
def test_a_time_that_does_not_exist_is_refused_on_a_linked_ticket_too(
    processor, desk, field, value
):
    assert processor.process(msg(snap(0))).effect == "opened"
    before = desk.stored_events()
    outcome = processor.process(msg(snap(1, "in_progress", **{field: value})))
    assert (outcome.status, outcome.kind) == ("rejected", "invalid-value")
    assert f"data/{field}" in outcome.reason
    assert desk.stored_events() == before


def test_a_poison_message_in_a_ticket_lane_leaves_the_lane_intact(processor, desk):
    outcomes = processor.process_batch(
        [
            msg(snap(0)),
            msg(snap(1, "in_progress", assignment_group="net\u0000")),
            msg(snap(2, "resolved")),
        ]
    )
    assert [o.status for o in outcomes] == ["applied", "rejected", "applied"]
    ticket = desk.repository.get(source_ticket_id(SOURCE, "INC0000045"))
    assert (ticket.mod_count, ticket.applied) == (2, 2)
    assert desk.get(UUID(outcomes[0].incident_id)).state == "resolved"


def test_integral_floats_are_taken_as_integers(processor, desk):
    """JSON Schema counts 2.0 as an integer; the mapping must not stumble on it."""
    levels = {"impact": 1.0, "urgency": 2.0}
    outcomes = processor.process_batch(
        [
            msg(snap(0, ref="F", reopen_count=0.0, **levels)),
            msg(snap(1.0, "resolved", ref="F", reopen_count=0.0, **levels)),
            msg(snap(2.0, "in_progress", ref="F", reopen_count=1.0, **levels)),
            alert("a-float", impact=1.0, urgency=1.0),
        ]
    )
    assert [o.status for o in outcomes] == ["applied"] * 4
    incident = desk.get(UUID(outcomes[0].incident_id))
    assert (incident.priority, incident.reopen_count) == ("P2", 1)
    ticket = desk.repository.get(source_ticket_id(SOURCE, "F"))
    assert type(ticket.mod_count) is int


def test_a_lone_surrogate_is_not_json_the_parser_accepts(processor):
    poison = raw_snapshot(
        orjson.dumps(snap(0, ref="RAW"))
        .decode()
        .replace('"updated_by":"user 0"', '"updated_by":"x\\ud800"')
    )
    outcomes = processor.process_batch([msg(snap(0, ref="G1")), poison])
    assert [(o.status, o.kind) for o in outcomes] == [("applied", None), ("rejected", "malformed")]


def test_an_absurd_rise_of_reopen_count_is_refused(processor, desk):
    processor.process_batch([msg(snap(0, ref="R")), msg(snap(1, "resolved", ref="R"))])
    outcome = processor.process(msg(snap(2, "in_progress", ref="R", reopen_count=10**9)))
    assert (outcome.status, outcome.kind) == ("rejected", "invalid-value")
    assert "reopen_count rose by 1000000000" in outcome.reason


def test_a_poison_message_applied_alone_after_a_version_clash_is_rejected(
    processor, desk, monkeypatch
):
    """The one-by-one fallback (after a taken version) rejects the same way."""
    from eventsourcing.persistence import IntegrityError

    def clash(events):
        raise IntegrityError("taken")

    monkeypatch.setattr(processor, "_apply_together", clash)
    outcomes = processor.process_batch(
        [msg(snap(0, ref="G1")), POISON["title NUL"], POISON["updated_at month 13"]]
    )
    assert [(o.status, o.kind) for o in outcomes] == [
        ("applied", None),
        ("rejected", "invalid-value"),
        ("rejected", "invalid-value"),
    ]
