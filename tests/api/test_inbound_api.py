"""POST /v1/inbound: the same code path as the Kafka consumer, answered over HTTP."""

from __future__ import annotations

import orjson
import pytest

from application.access import Role
from application.inbound.source_record_mapper import SourceRecordHandler
from domain.shared_kernel.errors import IllegalTransition
from infra.messaging.cloudevents import cloudevent
from tests.unit.test_inbound_source_records import snap

SOURCE = "servicenow://acme"
CE = {"content-type": "application/cloudevents+json"}


def snapshot(mod: int, state: str = "new", id_: str | None = None, **fields) -> bytes:
    data = snap(mod, state, **fields)
    return cloudevent("incident.snapshot", SOURCE, id_ or f"e{mod}", data["ref"], data)


@pytest.fixture
def post(client, auth):
    def send(body: bytes, role: Role = Role.INTEGRATION):
        return client.post("/v1/inbound", content=body, headers={**auth(role), **CE})

    return send


def stored(container) -> int:
    return container.desk.stored_events()


def test_an_integration_applies_a_snapshot_and_a_duplicate_is_reported(post, container):
    first = post(snapshot(0, assignment_group="Service Desk"))
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["status"] == "applied" and body["effect"] == "opened" and body["incident_id"]
    again = post(snapshot(0, assignment_group="Service Desk"))
    assert again.status_code == 200 and again.json()["status"] == "duplicate"


@pytest.mark.parametrize(
    "role, status",
    [(Role.INTEGRATION, 200), (Role.ADMIN, 200), (Role.AGENT, 403), (Role.MANAGER, 403)],
)
def test_only_integration_and_admin_may_send(post, role, status):
    assert post(snapshot(0, id_=f"by-{role}"), role).status_code == status


def test_no_key_is_401(client):
    assert client.post("/v1/inbound", content=snapshot(0)).status_code == 401


def _import_two_tickets(post, container) -> None:
    post(snapshot(0, ref="INC0000045"))
    post(snapshot(1, "in_progress", ref="INC0000045", id_="e1"))
    post(snapshot(0, ref="INC0000046", id_="other"))
    container.feed.catch_up()


def test_a_ticket_from_elsewhere_keeps_its_reference_in_the_read_model(post, container):
    from projections.incident import incident_queue as incidents_rm

    _import_two_tickets(post, container)
    with container.read_db.transaction(read_only=True) as tx:
        total, rows = incidents_rm.search(tx, {"external_ref": "INC0000045"}, 10, 0)
    assert total == 1
    assert (rows[0]["source"], rows[0]["state"]) == (SOURCE, "in_progress")


def test_a_ticket_from_elsewhere_is_found_by_its_external_reference(post, client, auth, container):
    _import_two_tickets(post, container)
    page = client.get(
        "/v1/incidents", params={"external_ref": "INC0000045"}, headers=auth(Role.AGENT)
    )
    assert page.status_code == 200
    assert page.json()["total"] == 1
    (item,) = page.json()["items"]
    assert item["external_ref"] == "INC0000045" and item["state"] == "in_progress"
    assert item["source"] == SOURCE


@pytest.mark.parametrize(
    "body, status, kind",
    [
        (b"{not json", 400, "inbound-malformed"),
        (orjson.dumps({"specversion": "1.0", "id": "x"}), 422, "inbound-not-a-cloudevent"),
        (cloudevent("ticket.deleted", SOURCE, "x", "INC1", {}), 422, "inbound-unknown-type"),
        (
            cloudevent("incident.snapshot", SOURCE, "x", "INC1", {**snap(0), "state": "Active"}),
            422,
            "inbound-invalid-data",
        ),
        (b"{" + b" " * (1024 * 1024) + b"}", 413, "inbound-too-large"),
    ],
)
def test_rejections_are_problems_and_write_nothing(post, container, body, status, kind):
    before = stored(container)
    response = post(body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == f"urn:itsm:problem:{kind}" and problem["detail"]
    assert stored(container) == before


def test_an_illegal_transition_is_409_and_writes_nothing(post, container, monkeypatch):
    post(snapshot(0))
    before = stored(container)

    def refuse(self, work, event):
        raise IllegalTransition("cannot resolve incident INC0001001: it is closed")

    monkeypatch.setattr(SourceRecordHandler, "handle", refuse)
    response = post(snapshot(1, "resolved"))
    assert response.status_code == 409
    assert response.json()["type"] == "urn:itsm:problem:inbound-illegal-transition"
    assert stored(container) == before


def test_alerts_over_http(post):
    fired = cloudevent(
        "alert.fired",
        "prometheus://am",
        "a1",
        "mail/smtp",
        {"service": "mail", "check": "smtp", "summary": "SMTP down"},
    )
    again = cloudevent(
        "alert.fired",
        "prometheus://am",
        "a2",
        "mail/smtp",
        {"service": "mail", "check": "smtp", "summary": "SMTP down"},
    )
    first, second = post(fired).json(), post(again).json()
    assert (first["effect"], second["effect"]) == ("opened", "attached")
    assert first["incident_id"] == second["incident_id"]


def test_inbound_outcomes_are_counted_in_metrics(post, client, auth, container):
    _import_two_tickets(post, container)
    text = client.get("/metrics", headers=auth(Role.ADMIN)).text
    assert (
        'itsm_inbound_messages_total{effect="opened",status="applied",type="incident.snapshot"}'
        in text
    )
