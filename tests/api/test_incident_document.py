"""One fold, one document: the incidents read model, the store fallback (the read model has
no row yet) and `as_of` (now) answer the same JSON for the same version of an incident,
whether it was logged here or imported with its source times, at every step of its life."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from application.access import Role
from infra.messaging.cloudevents import cloudevent
from tests.unit.test_inbound_source_records import snap

SOURCE = "servicenow://acme"
LOCAL_STEPS = (
    ("assign", {"group": "network", "agent": "erin"}),
    ("acknowledge", None),
    ("hold", {"reason": "awaiting_caller"}),
    ("resume", None),
    ("escalate", {"kind": "functional", "group": "messaging"}),
    ("resolve", {"code": "fixed"}),
    ("reopen", {"reason": "came back"}),
    ("resolve", {"code": "fixed again"}),
    ("close", {"satisfaction": 4}),
)
# The same life at the source, in 2016: each snapshot is one step.
SOURCE_STEPS = (
    snap(0, assignment_group="Service Desk", at="2016-03-01T09:05:00"),
    snap(1, "in_progress", assignment_group="Network", at="2016-03-01T11:00:00"),
    snap(2, "on_hold", hold_reason="awaiting_vendor", at="2016-03-01T12:00:00"),
    snap(3, "in_progress", at="2016-03-01T13:00:00"),
    snap(4, "resolved", at="2016-03-02T10:00:00"),
    snap(5, "in_progress", reopen_count=1, at="2016-03-03T10:00:00"),
    snap(6, "resolved", at="2016-03-04T10:00:00"),
    snap(7, "closed", at="2016-03-07T10:00:00"),
)


def _documents(client, auth, container, incident_id: str) -> list[tuple[str, dict]]:
    """(ETag, JSON) from the store fallback, `as_of` now and the read model, in turn."""
    url, auditor = f"/v1/incidents/{incident_id}", auth(Role.AUDITOR)
    container.runner("incidents").reset()  # no row: the route folds the stored events
    answers = [client.get(url, headers=auditor)]
    now = datetime.now(timezone.utc).isoformat()
    answers.append(client.get(url, params={"as_of": now}, headers=auditor))
    container.feed.catch_up()
    answers.append(client.get(url, headers=auditor))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert answers[1].json().pop("as_of") == now
    return [(a.headers["etag"], _without_as_of(a.json())) for a in answers]


def _without_as_of(document: dict) -> dict:
    return {field: value for field, value in document.items() if field != "as_of"}


def _assert_one_document(client, auth, container, incident_id: str) -> dict:
    fallback, as_of, read_model = _documents(client, auth, container, incident_id)
    assert fallback == as_of == read_model
    return read_model[1]


@pytest.fixture
def send_snapshot(client, auth):
    def send(data: dict) -> dict:
        body = cloudevent("incident.snapshot", SOURCE, f"e{data['mod_count']}", data["ref"], data)
        headers = {**auth(Role.INTEGRATION), "content-type": "application/cloudevents+json"}
        response = client.post("/v1/inbound", content=body, headers=headers)
        assert response.status_code == 200 and response.json()["status"] == "applied"
        return response.json()

    return send


def test_a_local_incident_reads_the_same_from_the_read_model_the_store_and_as_of(
    client, auth, container, log_incident, act
):
    incident = log_incident()
    states = [_assert_one_document(client, auth, container, incident["id"])["state"]]
    for action, body in LOCAL_STEPS:
        assert act(incident["id"], action, body).status_code == 200
        states.append(_assert_one_document(client, auth, container, incident["id"])["state"])
    assert states == [
        "new",
        "new",
        "in_progress",
        "on_hold",
        "in_progress",
        "in_progress",
        "resolved",
        "in_progress",
        "resolved",
        "closed",
    ]


def test_an_imported_incident_reads_the_same_and_opened_at_the_source(
    client, auth, container, send_snapshot
):
    incident_id = send_snapshot(SOURCE_STEPS[0])["incident_id"]
    documents = [_assert_one_document(client, auth, container, incident_id)]
    for data in SOURCE_STEPS[1:]:
        send_snapshot(data)
        documents.append(_assert_one_document(client, auth, container, incident_id))
    assert {d["opened_at"] for d in documents} == {"2016-03-01T09:00:00.000000Z"}
    assert [d["state"] for d in documents] == [
        "new",
        "in_progress",
        "on_hold",
        "in_progress",
        "resolved",
        "in_progress",
        "resolved",
        "closed",
    ]
    last = documents[-1]
    assert (last["reopen_count"], last["reassignment_count"]) == (1, 1)
    assert last["closed_at"] == last["updated_at"] == "2016-03-07T10:00:00.000000Z"
