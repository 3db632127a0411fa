"""API keys and roles; plus the unauthenticated /health and the admin /metrics."""

from __future__ import annotations

import re
import time

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from application.access import Role

EVERY_ROLE = set(Role)


def test_missing_key_is_401_with_www_authenticate(client):
    response = client.get("/v1/incidents")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"
    assert "missing" in response.json()["detail"]


def test_unknown_key_is_401(client):
    response = client.get("/v1/incidents", headers={"Authorization": "Bearer itsm_forged"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "unknown" in response.json()["detail"]


@pytest.fixture
def incident(log_incident):
    return log_incident()


# (method, path template, body, roles allowed): one representative route per permission.
ROUTES = [
    ("POST", "/v1/incidents/{id}/comment", {"text": "hello"}, {"agent", "manager", "admin"}),
    ("GET", "/v1/incidents", None, {"analyst", "manager", "agent", "admin"}),
    ("GET", "/v1/incidents/{id}", None, {"analyst", "manager", "agent", "auditor", "admin"}),
    ("GET", "/v1/incidents/{id}?as_of=2100-01-01T00:00:00Z", None, {"auditor", "admin"}),
    ("GET", "/v1/incidents/{id}/timeline", None, {"auditor", "manager", "admin"}),
    ("GET", "/v1/audit/aggregates/{id}/events", None, {"auditor", "manager", "admin"}),
    ("GET", "/v1/audit/events", None, {"auditor", "manager", "admin"}),
    ("GET", "/v1/audit/access", None, {"auditor", "admin"}),
    ("GET", "/metrics", None, {"analyst", "admin"}),
]
CASES = [
    (method, path, body, role, role in allowed)
    for method, path, body, allowed in ROUTES
    for role in sorted(EVERY_ROLE)
]


@pytest.mark.parametrize(
    ("method", "path", "body", "role", "allowed"),
    CASES,
    ids=[f"{c[0]} {c[1]} as {c[3]}" for c in CASES],
)
def test_roles(client, auth, incident, method, path, body, role, allowed):
    response = client.request(method, path.format(id=incident["id"]), json=body, headers=auth(role))
    if allowed:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/problem+json"
        assert "admin" in response.json()["detail"] and role in response.json()["detail"]


def test_log_incident_needs_an_operator_role(client, auth):
    body = {"title": "x", "caller": "bob", "impact": 1, "urgency": 1}
    for role in ("analyst", "auditor", "integration"):
        assert client.post("/v1/incidents", json=body, headers=auth(role)).status_code == 403
    for role in ("agent", "manager", "admin"):
        assert client.post("/v1/incidents", json=body, headers=auth(role)).status_code == 201


def test_health_needs_no_key(client, container):
    container.feed.catch_up()
    assert client.get("/health").status_code == 200
    assert client.get("/health/live").status_code == 200
    assert client.get("/health/ready").status_code == 200


def _sample(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name}{labels} missing from:\n{text}"
    return float(match.group(1))


def test_metrics_report_store_relay_projection_lag_and_http(
    client, auth, log_incident, act, container
):
    incident = log_incident()
    act(incident["id"], "assign", {"group": "network"})
    response = client.get("/metrics", headers=auth(Role.ADMIN))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    # The default SLA policy created at bootstrap, one key issued per role (an
    # ApiKey.Issued each), two incident events, and the incident number sequence's start
    # and the number it issued.
    stored = 5 + len(Role)
    assert _sample(text, "itsm_events_stored") == stored
    assert _sample(text, "itsm_events_published") == 0  # the feed has not run yet
    assert _sample(text, "itsm_relay_lag_events") == stored
    assert _sample(text, "itsm_projection_lag_events", '{projection="incidents"}') == stored
    route = '{method="POST",route="/v1/incidents/{incident_id}/assign",status="200"}'
    assert _sample(text, "itsm_http_request_duration_seconds_count", route) == 1

    container.feed.catch_up()
    text = client.get("/metrics", headers=auth(Role.ANALYST)).text
    assert _sample(text, "itsm_events_published") == stored
    assert _sample(text, "itsm_relay_lag_events") == 0
    assert _sample(text, "itsm_projection_lag_events", '{projection="timeline"}') == 0


def test_lifespan_runs_the_feed_so_read_models_follow(container, auth):
    with TestClient(create_app(container)) as client:
        created = client.post(
            "/v1/incidents",
            headers=auth(),
            json={"title": "x", "caller": "bob", "impact": 1, "urgency": 1},
        ).json()
        for _ in range(200):  # the feed polls every poll_interval; allow it a few seconds
            page = client.get("/v1/incidents", headers=auth()).json()
            if page["total"]:
                break
            time.sleep(0.02)
        assert page["items"][0]["number"] == created["number"]


def test_an_auditor_key_changes_nothing_anywhere(client, auth, incident):
    """Every operation of the API document that is not a read refuses an auditor's key
    before it looks at the request (so with any path parameters). A verification is a
    POST that computes a control table: asked to record it, it refuses too."""
    document = client.get("/openapi.json").json()
    writes = [
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
        if method in ("post", "put", "patch", "delete")
    ]
    assert len(writes) > 30
    for method, path in writes:
        concrete = re.sub(r"\{[^}]+\}", incident["id"], path)
        body = {"record": True}
        response = client.request(method, concrete, json=body, headers=auth("auditor"))
        assert response.status_code in (401, 403, 404, 405) and response.status_code != 200, (
            method,
            path,
            response.status_code,
        )
        assert response.status_code == 403 or path.startswith("/v1/inbound"), (method, path)
