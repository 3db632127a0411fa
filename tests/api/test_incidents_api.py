"""The incident lifecycle over HTTP, against a real event store and read models."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from uuid import UUID

from application.access import Role


def test_create_returns_201_with_number_priority_location_and_etag(client, auth):
    response = client.post(
        "/v1/incidents",
        headers=auth(),
        json={
            "title": "VPN down",
            "caller": "carol",
            "channel": "monitoring",
            "impact": 1,
            "urgency": 2,
        },
    )
    assert response.status_code == 201
    body = response.json()
    assert body["number"].startswith("INC")
    assert body["priority"] == "P2"  # impact 1 x urgency 2 in the default matrix
    assert (body["state"], body["version"]) == ("new", 1)
    assert response.headers["location"] == f"/v1/incidents/{body['id']}"
    assert response.headers["etag"] == '"1"'
    assert response.headers["content-type"] == "application/json"


def test_priority_follows_the_matrix(log_incident):
    assert log_incident(impact=1, urgency=1)["priority"] == "P1"
    assert log_incident(impact=2, urgency=2)["priority"] == "P3"
    assert log_incident(impact=3, urgency=3)["priority"] == "P4"


def test_whole_lifecycle(client, auth, log_incident, act, container):
    incident = log_incident(impact=2, urgency=1)
    steps = [
        ("assign", {"group": "service-desk", "agent": "dave"}, "new"),
        ("acknowledge", None, "in_progress"),
        ("escalate", {"kind": "functional", "group": "network"}, "in_progress"),
        ("escalate", {"kind": "hierarchical", "reason": "whole site"}, "in_progress"),
        ("hold", {"reason": "awaiting_vendor", "note": "ticket at ISP"}, "on_hold"),
        ("resume", None, "in_progress"),
        ("resolve", {"code": "workaround", "notes": "rerouted"}, "resolved"),
        ("reopen", {"reason": "came back"}, "in_progress"),
        ("resolve", {"code": "fixed"}, "resolved"),
        ("close", {"satisfaction": 5, "comment": "thanks"}, "closed"),
    ]
    for version, (action, body, state) in enumerate(steps, start=2):
        response = act(incident["id"], action, body)
        assert response.status_code == 200, (action, response.text)
        assert response.json()["state"] == state
        assert response.json()["version"] == version
        assert response.headers["etag"] == f'"{version}"'
    container.feed.catch_up()
    final = client.get(f"/v1/incidents/{incident['id']}", headers=auth()).json()
    assert final["state"] == "closed" and final["satisfaction"] == 5
    assert (final["tier"], final["major"], final["assignment_group"]) == ("L2", True, "network")
    assert final["reopen_count"] == 1 and final["resolution_code"] == "fixed"


def test_other_actions_comment_reprioritise_recategorise_cancel(log_incident, act):
    incident = log_incident(impact=3, urgency=3)
    assert (
        act(incident["id"], "comment", {"text": "called back", "public": True}).status_code == 200
    )
    reprioritised = act(incident["id"], "reprioritise", {"impact": 1, "urgency": 1})
    assert reprioritised.json()["priority"] == "P1"
    assert act(incident["id"], "recategorise", {"category": "network"}).status_code == 200
    assert act(incident["id"], "cancel", {"reason": "duplicate"}).json()["state"] == "cancelled"


def test_get_falls_back_to_the_event_store_while_the_read_model_lags(client, auth, log_incident):
    incident = log_incident()  # no catch_up: the read model has no row yet
    response = client.get(f"/v1/incidents/{incident['id']}", headers=auth(Role.ANALYST))
    assert response.status_code == 200
    assert response.json()["number"] == incident["number"]
    assert response.headers["etag"] == '"1"'


def test_list_filters_and_paging(client, auth, log_incident, act, container):
    first = log_incident(impact=1, urgency=1)
    second = log_incident(impact=3, urgency=3)
    third = log_incident(impact=3, urgency=3)
    act(first["id"], "assign", {"group": "network", "agent": "erin"})
    act(first["id"], "acknowledge")
    act(second["id"], "assign", {"group": "desktop"})
    container.feed.catch_up()

    def numbers(**params):
        response = client.get("/v1/incidents", params=params, headers=auth(Role.ANALYST))
        assert response.status_code == 200, response.text
        return {item["number"] for item in response.json()["items"]}

    assert numbers(state="in_progress") == {first["number"]}
    assert numbers(priority="P4") == {second["number"], third["number"]}
    assert numbers(group="desktop") == {second["number"]}
    assert numbers(assignee="erin") == {first["number"]}
    assert numbers(number=third["number"]) == {third["number"]}
    page = client.get(
        "/v1/incidents", params={"limit": 2, "offset": 1}, headers=auth(Role.ANALYST)
    ).json()
    assert (page["total"], page["limit"], page["offset"], len(page["items"])) == (3, 2, 1, 2)
    assert [i["number"] for i in page["items"]] == [second["number"], first["number"]]
    assert (
        client.get("/v1/incidents", params={"limit": 201}, headers=auth(Role.ANALYST)).status_code
        == 422
    )


def test_as_of_shows_the_past_state(client, auth, log_incident, act):
    incident = log_incident()
    time.sleep(0.01)  # event timestamps are microseconds apart: leave a clear gap
    moment = datetime.now(timezone.utc)
    time.sleep(0.01)
    act(incident["id"], "assign", {"group": "network"})
    act(incident["id"], "acknowledge")
    url = f"/v1/incidents/{incident['id']}"
    past = client.get(url, params={"as_of": moment.isoformat()}, headers=auth(Role.AUDITOR))
    assert past.status_code == 200, past.text
    assert (past.json()["state"], past.json()["version"]) == ("new", 1)
    assert past.json()["assignment_group"] is None
    now = client.get(
        url, params={"as_of": datetime.now(timezone.utc).isoformat()}, headers=auth(Role.AUDITOR)
    ).json()
    assert (now["state"], now["assignment_group"], now["version"]) == ("in_progress", "network", 3)


def test_as_of_before_the_incident_existed_is_404(client, auth, log_incident):
    incident = log_incident()
    response = client.get(
        f"/v1/incidents/{incident['id']}",
        params={"as_of": "2000-01-01T00:00:00Z"},
        headers=auth(Role.AUDITOR),
    )
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_as_of_rejects_a_naive_datetime(client, auth, log_incident):
    incident = log_incident()
    response = client.get(
        f"/v1/incidents/{incident['id']}",
        params={"as_of": "2025-01-01T12:00:00"},
        headers=auth(Role.AUDITOR),
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "as_of"
    assert "offset" in response.json()["detail"] and "Z" in response.json()["detail"]


def test_timeline_shows_actor_causation_and_changes(client, auth, log_incident, act, container):
    incident = log_incident()
    act(incident["id"], "assign", {"group": "network"}, headers={"X-Request-ID": "req-42"})
    container.feed.catch_up()
    response = client.get(f"/v1/incidents/{incident['id']}/timeline", headers=auth(Role.AUDITOR))
    assert response.status_code == 200
    logged, assigned = response.json()
    assert logged["event"] == "Logged" and assigned["event"] == "Assigned"
    assert assigned["actor"] == {"id": "agent-user", "kind": "person"}
    assert assigned["causation_id"] == "req-42"
    assert {"field": "assignment_group", "before": None, "after": "network"} in assigned["changes"]


def test_request_id_is_echoed_or_generated(client, auth, log_incident, act):
    incident = log_incident()
    echoed = act(incident["id"], "comment", {"text": "x"}, headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    generated = act(incident["id"], "comment", {"text": "y"})
    assert len(generated.headers["x-request-id"]) == 36  # a uuid4


def test_concurrent_writers_without_if_match_lose_no_update(client, auth, log_incident, container):
    incident = log_incident()
    before = container.desk.stored_events()
    results = []

    def comment(text: str) -> None:
        results.append(
            client.post(
                f"/v1/incidents/{incident['id']}/comment", json={"text": text}, headers=auth()
            )
        )

    threads = [threading.Thread(target=comment, args=(f"note {n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status_code for r in results] == [200, 200]
    assert sorted(r.json()["version"] for r in results) == [2, 3]
    assert container.desk.stored_events() == before + 2
    assert container.desk.get(UUID(incident["id"])).version == 3
