"""The access log: reads of personal data (an incident's detail, past state and timeline,
the audit trail and its exports) are recorded with who, what, when and which key; KPI
reads are not; auditors query it (docs/access.md)."""

from __future__ import annotations

from application.access import Role


def _log(client, auth, **params) -> list[dict]:
    response = client.get("/v1/audit/access", params=params, headers=auth(Role.AUDITOR))
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_reads_of_an_incident_are_recorded_with_the_key_and_request(
    client, auth, keys, log_incident
):
    incident = log_incident()
    ident = incident["id"]
    client.get(f"/v1/incidents/{ident}", headers=auth(Role.AGENT, **{"X-Request-ID": "r-1"}))
    client.get(f"/v1/incidents/{ident}?as_of=2100-01-01T00:00:00Z", headers=auth(Role.AUDITOR))
    client.get(f"/v1/incidents/{ident}/timeline", headers=auth(Role.MANAGER))
    entries = _log(client, auth, resource_id=ident)
    assert [(e["action"], e["role"]) for e in entries] == [
        ("read_detail", "agent"),
        ("read_as_of", "auditor"),
        ("read_timeline", "manager"),
    ]
    assert entries[0]["request_id"] == "r-1" and entries[0]["resource_type"] == "Incident"
    assert entries[1]["detail"] == "2100-01-01T00:00:00Z"
    assert all(e["key_name"] and e["at"].endswith("Z") for e in entries)


def test_audit_queries_and_exports_are_recorded_with_the_query(client, auth, log_incident):
    log_incident()
    client.get("/v1/audit/events?actor=alice&format=csv", headers=auth(Role.AUDITOR))
    client.get("/v1/audit/events?aggregate_type=Incident", headers=auth(Role.MANAGER))
    entries = _log(client, auth, resource_type="AuditEvents")
    assert [e["action"] for e in entries] == ["export_audit", "read_audit"]
    assert '"actor":"alice"' in entries[0]["detail"]


def test_kpi_reads_and_refused_reads_are_not_recorded(client, auth, log_incident):
    incident = log_incident()
    client.get("/v1/kpis?period=month", headers=auth(Role.ANALYST))
    client.get(f"/v1/incidents/{incident['id']}/timeline", headers=auth(Role.AGENT))  # 403
    assert _log(client, auth) == []


def test_the_log_pages_and_is_for_auditors_only(client, auth, log_incident):
    incident = log_incident()
    for _ in range(3):
        client.get(f"/v1/incidents/{incident['id']}", headers=auth(Role.AGENT))
    first = client.get("/v1/audit/access?limit=2", headers=auth(Role.AUDITOR)).json()
    second = client.get(
        f"/v1/audit/access?limit=2&after={first['next']}", headers=auth(Role.AUDITOR)
    ).json()
    assert len(first["items"]) == 2 and len(second["items"]) == 1 and second["next"] is None
    for role in (Role.MANAGER, Role.AGENT, Role.ANALYST):
        assert client.get("/v1/audit/access", headers=auth(role)).status_code == 403
