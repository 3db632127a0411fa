"""`/v1/keys`: API keys as a managed resource, admin only (docs/access.md)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from application.access import REVOCATION_BOUND_SECONDS, Role
from infra.composition_root import bootstrap
from infra.settings import Settings

PROBLEM = "application/problem+json"


def bearer(secret: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}", **extra}


@pytest.fixture
def admin(auth):
    return auth(Role.ADMIN)


@pytest.fixture
def issue(client, admin):
    def run(name: str = "bridge", role: str = "agent", **body) -> dict:
        response = client.post("/v1/keys", json={"name": name, "role": role, **body}, headers=admin)
        assert response.status_code == 201, response.text
        return response.json()

    return run


def can_read(client, secret: str):
    return client.get("/v1/incidents", headers=bearer(secret))


@pytest.mark.parametrize("role", sorted(set(Role) - {Role.ADMIN}))
def test_only_admin_manages_keys(client, auth, issue, role):
    key = issue()
    for method, path, body in [
        ("GET", "/v1/keys", None),
        ("POST", "/v1/keys", {"name": "x", "role": "agent"}),
        ("GET", f"/v1/keys/{key['id']}", None),
        ("POST", f"/v1/keys/{key['id']}/revoke", None),
        ("POST", f"/v1/keys/{key['id']}/rotate", None),
        ("POST", f"/v1/keys/{key['id']}/expiry", {"expires": None}),
    ]:
        response = client.request(method, path, json=body, headers=auth(role))
        assert response.status_code == 403, (method, path)
        assert response.headers["content-type"] == PROBLEM
    assert client.get("/v1/keys", headers=auth(Role.ADMIN)).status_code == 200


def test_create_shows_the_secret_once_and_it_works(client, admin, issue):
    response = client.post("/v1/keys", json={"name": "  bridge ", "role": "agent"}, headers=admin)
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    created = response.json()
    assert response.headers["location"] == f"/v1/keys/{created['id']}"
    assert created["name"] == "bridge" and created["role"] == "agent"
    assert created["status"] == "active" and created["generation"] == 1
    assert created["issued_by"] == "admin-user" and created["expires_at"] is None
    assert can_read(client, created["secret"]).status_code == 200
    listed = client.get("/v1/keys", headers=admin).json()
    assert "bridge" in {k["name"] for k in listed}
    assert all("secret" not in k for k in listed)
    one = client.get(f"/v1/keys/{created['id']}", headers=admin).json()
    assert "secret" not in one and one["name"] == "bridge"


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "not blank"),
        ("   ", "not blank"),
        ("x" * 101, "at most 100"),
        ("a\u0007b", "control"),
        ("a\nb", "control"),
    ],
)
def test_bad_names_are_422(client, admin, name, why):
    response = client.post("/v1/keys", json={"name": name, "role": "agent"}, headers=admin)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert why in response.json()["detail"]


def test_bad_role_and_expiry_are_422(client, admin):
    for body in (
        {"name": "x", "role": "root"},
        {"name": "x", "role": "agent", "expires": "soon"},
        {"name": "x", "role": "agent", "expires": "2020-01-01T00:00:00Z"},
        {"name": "x", "role": "agent", "extra": 1},
    ):
        response = client.post("/v1/keys", json=body, headers=admin)
        assert response.status_code == 422, body
        assert response.headers["content-type"] == PROBLEM
    assert client.get("/v1/keys/not-a-uuid", headers=admin).status_code == 422
    missing = client.get("/v1/keys/00000000-0000-0000-0000-000000000000", headers=admin)
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM


def test_a_name_is_unique_among_keys_not_revoked(client, admin, issue):
    first = issue("bridge")
    taken = client.post("/v1/keys", json={"name": "bridge ", "role": "analyst"}, headers=admin)
    assert taken.status_code == 409
    assert taken.headers["content-type"] == PROBLEM
    assert taken.json()["type"] == "urn:itsm:problem:key-name-taken"
    assert "'bridge'" in taken.json()["detail"]
    assert client.post(f"/v1/keys/{first['id']}/revoke", headers=admin).status_code == 200
    assert issue("bridge", "analyst")["id"] != first["id"]


def test_revoke_stops_the_key(client, admin, issue):
    key = issue()
    assert can_read(client, key["secret"]).status_code == 200
    response = client.post(
        f"/v1/keys/{key['id']}/revoke", json={"reason": "laptop lost"}, headers=admin
    )
    assert response.status_code == 200 and response.json()["status"] == "revoked"
    refused = can_read(client, key["secret"])
    assert refused.status_code == 401 and refused.headers["content-type"] == PROBLEM
    assert "revoked" in refused.json()["detail"]
    again = client.post(f"/v1/keys/{key['id']}/revoke", headers=admin)
    assert again.status_code == 409 and "revoked" in again.json()["detail"]


def test_rotate_gives_a_new_secret_and_the_old_one_stops(client, admin, issue):
    key = issue("bridge", "analyst")
    response = client.post(f"/v1/keys/{key['id']}/rotate", headers=admin)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    rotated = response.json()
    assert (rotated["id"], rotated["name"], rotated["role"]) == (key["id"], "bridge", "analyst")
    assert rotated["generation"] == 2 and rotated["secret"] != key["secret"]
    old = client.get("/v1/kpis", headers=bearer(key["secret"]))
    assert old.status_code == 401 and "rotated" in old.json()["detail"]
    assert client.get("/v1/kpis", headers=bearer(rotated["secret"])).status_code == 200


def test_an_expired_key_is_401_saying_expired(client, admin, issue):
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    key = issue("temp", expires=soon)
    assert key["expires_at"] is not None
    assert can_read(client, key["secret"]).status_code == 200
    time.sleep(1.1)
    refused = can_read(client, key["secret"])
    assert refused.status_code == 401
    assert refused.headers["content-type"] == PROBLEM
    assert refused.headers["www-authenticate"] == "Bearer"
    assert refused.json()["type"] == "urn:itsm:problem:expired-key"
    assert "expired" in refused.json()["detail"]
    listed = {k["name"]: k for k in client.get("/v1/keys", headers=admin).json()}
    assert listed["temp"]["status"] == "expired"
    extended = client.post(f"/v1/keys/{key['id']}/expiry", json={"expires": "P30D"}, headers=admin)
    assert extended.status_code == 200 and extended.json()["status"] == "active"
    assert can_read(client, key["secret"]).status_code == 200


def test_every_key_action_is_in_the_audit_trail(client, admin, issue, container):
    key = issue("bridge")
    for action, body in (("rotate", None), ("expiry", {"expires": "90d"}), ("revoke", None)):
        response = client.post(
            f"/v1/keys/{key['id']}/{action}", json=body, headers={**admin, "X-Request-ID": action}
        )
        assert response.status_code == 200, response.text
    container.feed.catch_up()
    trail = client.get(f"/v1/audit/aggregates/{key['id']}/events", headers=admin).json()
    entries = trail["events"] if isinstance(trail, dict) else trail
    assert [e["event"] for e in entries] == ["Issued", "Rotated", "ExpirySet", "Revoked"]
    assert {e["actor"]["id"] for e in entries} == {"admin-user"}
    assert [e["causation_id"] for e in entries][1:] == ["rotate", "expiry", "revoke"]
    assert entries[0]["aggregate_type"] == "ApiKey"
    text = str(trail)
    assert key["secret"] not in text and "digest" not in text


def test_revocation_reaches_another_api_instance_within_the_bound(
    tmp_path, container, client, issue, admin
):
    other = bootstrap(Settings(data_dir=tmp_path))
    try:
        elsewhere = TestClient(create_app(other), raise_server_exceptions=False)
        key = issue()
        assert can_read(elsewhere, key["secret"]).status_code == 200  # cached there now
        assert client.post(f"/v1/keys/{key['id']}/revoke", headers=admin).status_code == 200
        revoked_at = time.monotonic()
        while True:
            checked = time.monotonic()
            status = can_read(elsewhere, key["secret"]).status_code
            if status == 401:
                break
            assert checked - revoked_at < REVOCATION_BOUND_SECONDS
            time.sleep(0.05)
    finally:
        other.close()
