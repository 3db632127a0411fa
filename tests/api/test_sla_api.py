"""SLA routes: policies (versions, audit, roles), clocks, at-risk, breaches, compliance."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from application.access import Role
from application.sla.default_policy import DEFAULT_POLICY_ID

POLICY = {
    "name": "Mail P1",
    "conditions": {"service": ["email"]},
    "rank": 3,
    "targets": {"respond": {"*": "PT10M"}, "resolve": {"P1": "PT2H", "*": 14400}},
    "ola": {"messaging": {"*": "PT1H"}},
}


def _create(client, auth, body=POLICY, role=Role.MANAGER, **headers):
    return client.post("/v1/sla/policies", json=body, headers=auth(role, **headers))


def test_a_fresh_install_has_the_default_policy(client, auth, container):
    container.feed.catch_up()
    listed = client.get("/v1/sla/policies", headers=auth(Role.ANALYST)).json()
    assert [p["id"] for p in listed] == [str(DEFAULT_POLICY_ID)]
    assert listed[0]["spec"]["targets"]["resolve"]["P1"] == 4 * 3600


def test_managers_create_and_edit_policies_and_each_edit_is_a_version(client, auth, container):
    created = _create(client, auth, **{"X-Request-ID": "req-create"})
    assert created.status_code == 201, created.text
    policy = created.json()
    assert policy["version"] == 1 and created.headers["ETag"] == '"1"'
    assert policy["spec"]["targets"]["respond"] == {"*": 600}
    assert created.headers["Location"] == f"/v1/sla/policies/{policy['id']}"
    patched = client.patch(
        f"/v1/sla/policies/{policy['id']}",
        json={"rank": 7},
        headers=auth(Role.MANAGER, **{"X-Request-ID": "req-patch", "If-Match": '"1"'}),
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["version"] == 2 and patched.json()["rank"] == 7
    assert patched.json()["spec"]["targets"]["respond"] == {"*": 600}  # untouched
    put = client.put(
        f"/v1/sla/policies/{policy['id']}",
        json={**POLICY, "targets": {"resolve": {"*": "P1D"}}},
        headers=auth(Role.ADMIN, **{"X-Request-ID": "req-put"}),
    )
    assert put.status_code == 200 and put.json()["version"] == 3
    one = client.get(f"/v1/sla/policies/{policy['id']}", headers=auth(Role.AUDITOR)).json()
    assert [(v["version"], v["actor"]["id"], v["causation_id"]) for v in one["versions"]] == [
        (1, "manager-user", "req-create"),
        (2, "manager-user", "req-patch"),
        (3, "admin-user", "req-put"),
    ]
    assert one["versions"][0]["spec"]["rank"] == 3  # past versions are kept as they were
    assert one["spec"]["targets"] == {"resolve": {"*": 86400}}
    container.feed.catch_up()
    listed = client.get("/v1/sla/policies", headers=auth(Role.MANAGER)).json()
    assert {p["id"]: p["version"] for p in listed}[policy["id"]] == 3


def test_editing_needs_the_manager_role_and_a_stale_version_conflicts(client, auth):
    assert _create(client, auth, role=Role.AGENT).status_code == 403
    assert _create(client, auth, role=Role.ANALYST).status_code == 403
    policy = _create(client, auth).json()
    stale = client.patch(
        f"/v1/sla/policies/{policy['id']}",
        json={"rank": 1},
        headers=auth(Role.MANAGER, **{"If-Match": '"5"'}),
    )
    assert stale.status_code == 409
    same = client.patch(
        f"/v1/sla/policies/{policy['id']}", json={"rank": 3}, headers=auth(Role.MANAGER)
    )
    # Nothing would change: the current version answers, no new one (idempotent).
    assert (same.status_code, same.json()["version"]) == (200, policy["version"])
    assert client.get("/v1/sla/policies", headers=auth(Role.AGENT)).status_code == 403
    missing = client.get(
        "/v1/sla/policies/00000000-0000-0000-0000-000000000000", headers=auth(Role.ANALYST)
    )
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


def test_invalid_policies_are_refused(client, auth):
    bad = _create(client, auth, body={"name": "x", "targets": {"resolve": {"P9": "PT1H"}}})
    assert bad.status_code == 422
    none = _create(client, auth, body={"name": "no targets"})
    assert none.status_code == 422 and "target" in none.json()["detail"]
    calendar = _create(client, auth, body={**POLICY, "calendar": {"timezone": "Mars/Base"}})
    assert calendar.status_code == 422


def test_incident_sla_shows_the_clocks_of_the_matching_policy(
    client, auth, container, log_incident, act
):
    policy = _create(client, auth).json()
    container.feed.catch_up()
    incident = log_incident(impact=1, urgency=1)  # service email, P1
    assert act(incident["id"], "assign", {"group": "messaging"}).status_code == 200
    container.feed.catch_up()
    response = client.get(f"/v1/incidents/{incident['id']}/sla", headers=auth(Role.ANALYST))
    assert response.status_code == 200, response.text
    clocks = {c["metric"]: c for c in response.json()["clocks"]}
    assert set(clocks) == {"respond", "resolve", "ola"}
    assert clocks["resolve"]["policy_id"] == policy["id"]
    assert clocks["resolve"]["policy_version"] == 1 and clocks["resolve"]["target_seconds"] == 7200
    assert clocks["ola"]["group"] == "messaging" and clocks["ola"]["state"] == "running"
    assert clocks["respond"]["remaining_seconds"] <= 600
    other = log_incident(service="web")
    container.feed.catch_up()
    default = client.get(f"/v1/incidents/{other['id']}/sla", headers=auth(Role.AUDITOR)).json()
    assert {c["policy_id"] for c in default["clocks"]} == {str(DEFAULT_POLICY_ID)}
    unknown = client.get(
        "/v1/incidents/00000000-0000-0000-0000-000000000000/sla", headers=auth(Role.ANALYST)
    )
    assert unknown.status_code == 404


def test_at_risk_breaches_and_compliance(client, auth, container, log_incident, act):
    _create(
        client,
        auth,
        body={
            "name": "tight",
            "targets": {"respond": {"*": 1}, "resolve": {"*": "PT30M"}},
            "warnings": [],
        },
    )
    container.feed.catch_up()
    late = log_incident(impact=3, urgency=3)
    quick = log_incident(impact=3, urgency=3)
    assert act(quick["id"], "acknowledge").status_code == 200
    import time

    assert act(late["id"], "assign", {"group": "network"}).status_code == 200
    time.sleep(1.1)
    assert act(late["id"], "acknowledge").status_code == 200
    container.feed.catch_up()
    risky = client.get("/v1/sla/at-risk?within=PT1H", headers=auth(Role.ANALYST)).json()
    assert {i["ticket_id"] for i in risky["items"] if i["metric"] == "resolve"} == {
        late["id"],
        quick["id"],
    }
    assert (
        client.get("/v1/sla/at-risk?within=PT1M", headers=auth(Role.ANALYST)).json()["items"] == []
    )
    assert client.get("/v1/sla/at-risk?within=soon", headers=auth(Role.ANALYST)).status_code == 422
    now = datetime.now(timezone.utc)
    window = {
        "from": (now - timedelta(hours=1)).isoformat(),
        "to": (now + timedelta(minutes=1)).isoformat(),
    }
    found = client.get("/v1/sla/breaches", params=window, headers=auth(Role.MANAGER)).json()
    assert [(i["ticket_id"], i["metric"]) for i in found["items"]] == [(late["id"], "respond")]
    assert found["items"][0]["overrun_seconds"] > 0
    by_group = client.get(
        "/v1/sla/breaches", params={**window, "group": "desk"}, headers=auth(Role.MANAGER)
    ).json()
    assert by_group["items"] == []
    in_group = client.get(
        "/v1/sla/breaches", params={**window, "group": "network"}, headers=auth(Role.MANAGER)
    ).json()
    assert [i["group"] for i in in_group["items"]] == ["network"]  # held it at the breach
    compliance = client.get(
        "/v1/sla/compliance", params={**window, "by": "priority"}, headers=auth(Role.AUDITOR)
    ).json()
    respond = [i for i in compliance["items"] if i["metric"] == "respond"]
    assert respond == [
        {"metric": "respond", "key": "P4", "met": 1, "breached": 1, "compliance_percent": 50.0}
    ]
    by_period = client.get(
        "/v1/sla/compliance",
        params={**window, "by": "period", "period": "day"},
        headers=auth(Role.ANALYST),
    ).json()
    assert (
        by_period["items"][0]["key"] == now.date().isoformat()
        or by_period["items"][0]["key"] == (now + timedelta(minutes=1)).date().isoformat()
    )
    assert (
        client.get(
            "/v1/sla/compliance", params={"by": "colour"}, headers=auth(Role.ANALYST)
        ).status_code
        == 422
    )


@pytest.mark.parametrize(
    "role,status",
    [(Role.AGENT, 403), (Role.INTEGRATION, 403), (Role.AUDITOR, 200), (Role.ANALYST, 200)],
)
def test_read_roles(client, auth, role, status):
    assert client.get("/v1/sla/at-risk", headers=auth(role)).status_code == status
