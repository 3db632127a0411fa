"""Errors are RFC 9457 problems, and a refused request writes nothing."""

from __future__ import annotations

import pytest

PROBLEM = "application/problem+json"


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail", "instance"} <= body.keys()
    return body


def test_illegal_transition_is_409_and_writes_nothing(log_incident, act, container):
    incident = log_incident()
    before = container.desk.stored_events()
    body = assert_problem(act(incident["id"], "resume"), 409)
    assert body["title"] == "Illegal transition"
    assert body["detail"] == f"cannot resume incident {incident['number']}: it is new"
    assert body["instance"] == f"/v1/incidents/{incident['id']}/resume"
    assert container.desk.stored_events() == before


def test_stale_if_match_is_409_and_writes_nothing(log_incident, act, container):
    incident = log_incident()
    act(incident["id"], "assign", {"group": "network"})
    before = container.desk.stored_events()
    body = assert_problem(act(incident["id"], "acknowledge", headers={"If-Match": '"1"'}), 409)
    assert body["title"] == "Version conflict"
    assert "version 2" in body["detail"]
    assert container.desk.stored_events() == before


@pytest.mark.parametrize("if_match", ['"2"', "2", 'W/"2"'])
def test_current_if_match_is_accepted(log_incident, act, if_match):
    incident = log_incident()
    act(incident["id"], "assign", {"group": "network"})
    response = act(incident["id"], "acknowledge", headers={"If-Match": if_match})
    assert response.status_code == 200
    assert response.headers["etag"] == '"3"'


def test_unparsable_if_match_is_400(log_incident, act, container):
    incident = log_incident()
    before = container.desk.stored_events()
    body = assert_problem(act(incident["id"], "acknowledge", headers={"If-Match": "banana"}), 400)
    assert "If-Match" in body["detail"]
    assert container.desk.stored_events() == before


INVALID_BODIES = {
    "impact out of range": {"json": {"title": "x", "caller": "bob", "impact": 7, "urgency": 1}},
    "missing title": {"json": {"caller": "bob", "impact": 1, "urgency": 1}},
    "wrong types": {"json": {"title": ["x"], "caller": "bob", "impact": "high", "urgency": 1}},
    "unknown channel": {
        "json": {"title": "x", "caller": "b", "impact": 1, "urgency": 1, "channel": "pigeon"}
    },
}


@pytest.mark.parametrize("case", INVALID_BODIES, ids=list(INVALID_BODIES))
def test_invalid_body_is_422_with_field_errors_and_writes_nothing(client, auth, container, case):
    before = container.desk.stored_events()
    body = assert_problem(client.post("/v1/incidents", headers=auth(), **INVALID_BODIES[case]), 422)
    assert body["errors"] and all(e["field"] and e["message"] for e in body["errors"])
    assert container.desk.stored_events() == before


def test_field_errors_name_the_fields(client, auth):
    body = client.post(
        "/v1/incidents", headers=auth(), json={"caller": "bob", "impact": 7, "urgency": 1}
    ).json()
    fields = {e["field"]: e["message"] for e in body["errors"]}
    assert fields["title"] == "is required"
    assert "less than or equal to 3" in fields["impact"]


def test_non_json_body_is_rejected_and_writes_nothing(client, auth, container):
    before = container.desk.stored_events()
    malformed = client.post(
        "/v1/incidents", content=b'{"title": ', headers=auth(**{"Content-Type": "application/json"})
    )
    assert "not valid JSON" in assert_problem(malformed, 400)["detail"]
    plain = client.post(
        "/v1/incidents", content=b"title=x", headers=auth(**{"Content-Type": "text/plain"})
    )
    assert "JSON object" in assert_problem(plain, 422)["detail"]
    assert container.desk.stored_events() == before


def test_invalid_action_body_writes_nothing(log_incident, act, container):
    incident = log_incident()
    before = container.desk.stored_events()
    assert_problem(act(incident["id"], "hold", {"reason": "lunch"}), 422)
    assert_problem(act(incident["id"], "close", {"satisfaction": 9}), 422)
    assert_problem(act(incident["id"], "assign", {}), 422)
    assert container.desk.stored_events() == before


def test_unknown_action_is_404_listing_the_actions(log_incident, act):
    incident = log_incident()
    body = assert_problem(act(incident["id"], "teleport", {}), 404)
    assert "teleport" in body["detail"] and "acknowledge" in body["detail"]


def test_unknown_incident_is_404(client, auth, act):
    unknown = "00000000-0000-4000-8000-000000000000"
    assert_problem(client.get(f"/v1/incidents/{unknown}", headers=auth()), 404)
    assert_problem(act(unknown, "acknowledge"), 404)


def test_unknown_route_is_a_problem(client, auth):
    assert_problem(client.get("/nowhere", headers=auth()), 404)
    # Without a key every route but the public ones is a 401, known or not (docs/http.md).
    assert_problem(client.get("/nowhere"), 401)


def test_unexpected_error_is_500_without_a_trace(client, auth, container, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(container.desk, "create", explode)
    response = client.post(
        "/v1/incidents",
        headers=auth(),
        json={"title": "x", "caller": "bob", "impact": 1, "urgency": 1},
    )
    body = assert_problem(response, 500)
    assert "secret" not in response.text and "Traceback" not in response.text
    assert body["detail"]
    assert response.headers["x-request-id"]
