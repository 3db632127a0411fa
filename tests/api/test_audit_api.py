"""The audit trail records every event of every aggregate type; GET /v1/audit/aggregates/
{id}/events shows one aggregate's, and the incident timeline is its view of an incident."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.audit import audit_routes
from application.access import Role
from application.sla.default_policy import DEFAULT_POLICY_ID
from infra.messaging.cloudevents import cloudevent
from tests.unit.test_inbound_source_records import snap

CE = {"content-type": "application/cloudevents+json"}
ALERT = {"service": "mail", "check": "smtp", "summary": "SMTP down"}


@pytest.fixture
def client(container) -> TestClient:
    # api/app.py does not register the audit router yet: it is added here.
    app = create_app(container)
    app.include_router(audit_routes.router)
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def inbound(client, auth):
    def send(body: bytes) -> dict:
        response = client.post(
            "/v1/inbound", content=body, headers={**auth(Role.INTEGRATION), **CE}
        )
        assert response.status_code == 200, response.text
        return response.json()

    return send


def _events(client, auth, aggregate_id, role: Role = Role.AUDITOR):
    return client.get(f"/v1/audit/aggregates/{aggregate_id}/events", headers=auth(role))


def test_every_aggregate_type_is_recorded(client, auth, container, log_incident, inbound):
    log_incident()
    inbound(cloudevent("incident.snapshot", "servicenow://acme", "e0", "INC0000045", snap(0)))
    inbound(cloudevent("alert.fired", "prometheus://am", "a1", "mail/smtp", ALERT))
    container.feed.catch_up()
    with container.read_db.transaction(read_only=True) as tx:
        types = {r[0] for r in tx.execute("SELECT aggregate_type FROM rm_audit_trail").fetchall()}
        lines = tx.execute("SELECT COUNT(*) FROM rm_audit_trail").fetchone()[0]
    # and any other aggregate type the desk stores, with no change to the trail
    assert types >= {"Incident", "SlaPolicy", "SourceTicket", "AlertFingerprint", "InboundReceipt"}
    assert lines == container.desk.stored_events()


def test_an_sla_policy_shows_who_created_it_and_its_fields(client, auth, container):
    container.feed.catch_up()
    response = _events(client, auth, DEFAULT_POLICY_ID)
    assert response.status_code == 200, response.text
    (created,) = response.json()
    assert (created["aggregate_type"], created["event"], created["version"]) == (
        "SlaPolicy",
        "Created",
        1,
    )
    assert created["actor"] == {"id": "bootstrap", "kind": "automation"}
    assert created["causation_id"] == "bootstrap" and created["position"] >= 1
    assert created["changes"] == [{"field": "spec", "after": created["details"]["spec"]}]
    assert created["occurred_at"] == created["recorded_at"]


def test_an_imported_incident_happened_at_the_source_and_was_recorded_now(
    client, auth, container, inbound
):
    data = snap(0, assignment_group="Service Desk", at="2016-03-01T09:05:00")
    incident_id = inbound(
        cloudevent("incident.snapshot", "servicenow://acme", "e0", "INC0000045", data)
    )["incident_id"]
    container.feed.catch_up()
    logged, assigned = _events(client, auth, incident_id).json()
    assert logged["occurred_at"] == "2016-03-01T09:00:00.000000Z"
    assert logged["recorded_at"] > "2026" and logged["actor"]["id"] == "opener"
    assert assigned["occurred_at"] == "2016-03-01T09:05:00.000000Z"
    assert {"field": "assignment_group", "before": None, "after": "Service Desk"} in assigned[
        "changes"
    ]
    assert logged["position"] < assigned["position"]


def test_the_incident_timeline_is_the_audit_trail_of_the_incident(
    client, auth, container, log_incident, act
):
    incident = log_incident()
    act(incident["id"], "assign", {"group": "network"}, headers={"X-Request-ID": "req-7"})
    act(incident["id"], "hold", {"reason": "awaiting_vendor"})
    container.feed.catch_up()
    trail = _events(client, auth, incident["id"]).json()
    timeline = client.get(
        f"/v1/incidents/{incident['id']}/timeline", headers=auth(Role.AUDITOR)
    ).json()
    assert [line["aggregate_type"] for line in trail] == ["Incident"] * 3
    assert timeline == [{key: line[key] for key in timeline[0]} for line in trail]
    assert trail[1]["causation_id"] == "req-7"
    assert {"field": "hold_reason", "before": None, "after": "awaiting_vendor"} in trail[2][
        "changes"
    ]


def test_an_aggregate_the_trail_has_not_reached_has_no_events_and_an_unknown_one_is_404(
    client, auth, log_incident
):
    incident = log_incident()  # no catch_up
    assert _events(client, auth, incident["id"]).json() == []
    unknown = _events(client, auth, "00000000-0000-4000-8000-000000000000")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"


def test_only_auditors_and_managers_read_the_trail(client, auth):
    assert _events(client, auth, DEFAULT_POLICY_ID, Role.AGENT).status_code == 403
    assert _events(client, auth, DEFAULT_POLICY_ID, Role.MANAGER).status_code == 200
