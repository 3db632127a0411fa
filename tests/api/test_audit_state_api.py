"""GET /v1/audit/aggregates/{id}/state: any aggregate type as it stood at a past moment,
for auditors; each read recorded in the access log."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from application.access import Role
from domain.shared_kernel.actor import Actor
from domain.shared_kernel.command_context import Context


def _state(client, auth, aggregate_id: str, when: datetime, role=Role.AUDITOR):
    return client.get(
        f"/v1/audit/aggregates/{aggregate_id}/state",
        params={"as_of": when.isoformat()},
        headers=auth(role),
    )


def test_an_api_key_as_it_stood_before_and_after_its_revocation(container, client, auth):
    issued = container.keys.issue("printer-bot", Role.AGENT, Context(Actor("admin"), "t-1"))
    before_revocation = datetime.now(UTC)
    time.sleep(0.01)
    container.keys.revoke(issued.key.id, Context(Actor("admin"), "t-2"), reason="leaked")
    key_id = str(issued.key.id)
    then = _state(client, auth, key_id, before_revocation).json()
    now = _state(client, auth, key_id, datetime.now(UTC)).json()
    assert then["aggregate_type"] == "ApiKey" and then["version"] == 1
    assert then["state"]["name"] == "printer-bot" and "reason" not in then["state"]
    assert now["version"] == 2 and now["state"]["reason"] == "leaked"
    assert "secret" not in str(now["state"]).replace("secret_id", "")


def test_an_incident_as_it_stood_is_its_record_with_personal_data_opened(
    client, auth, log_incident, act
):
    incident = log_incident(title="Mail is down", caller="bob")
    logged = datetime.now(UTC)
    time.sleep(0.01)
    assert act(incident["id"], "assign", {"group": "desk"}).status_code == 200
    then = _state(client, auth, incident["id"], logged).json()
    assert then["state"]["state"] == "new" and then["state"]["assignment_group"] is None
    assert then["state"]["title"] == "Mail is down" and then["state"]["caller"] == "bob"
    now = _state(client, auth, incident["id"], datetime.now(UTC)).json()
    assert now["state"]["assignment_group"] == "desk"


def test_before_it_existed_is_a_404_and_agents_may_not_ask(client, auth, log_incident):
    incident = log_incident()
    long_ago = datetime.now(UTC) - timedelta(days=1)
    response = _state(client, auth, incident["id"], long_ago)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert _state(client, auth, incident["id"], datetime.now(UTC), Role.AGENT).status_code == 403


def test_each_read_is_in_the_access_log(client, auth, log_incident):
    incident = log_incident()
    _state(client, auth, incident["id"], datetime.now(UTC))
    log = client.get(
        "/v1/audit/access", params={"resource_id": incident["id"]}, headers=auth(Role.AUDITOR)
    ).json()["items"]
    assert [(e["action"], e["resource_type"]) for e in log] == [("read_as_of", "Incident")]
