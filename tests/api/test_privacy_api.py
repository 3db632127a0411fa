"""/v1/privacy: erasing a caller or an agent through the API (admins only); everything of
theirs then reads "[erased]" in what the API answers, and the rest is intact."""

from __future__ import annotations

from application.access import Role
from domain.incident.commands import Assign, Comment, LogIncident
from domain.shared_kernel.actor import Actor
from domain.shared_kernel.command_context import Context


def _erase(client, auth, role=Role.ADMIN, **named):
    body = {**named, "reason": "asked by letter", "legal_basis": "consent_withdrawn"}
    return client.post("/v1/privacy/erasures", json=body, headers=auth(role))


def _incident(container, caller: str, agent: str) -> str:
    ctx = Context(Actor(agent), "privacy-api")
    desk = container.desk
    incident = desk.create(
        LogIncident(title=f"{caller}'s mail", caller=caller, impact=2, urgency=2), ctx
    )
    desk.execute(incident.id, Assign(group="desk", agent=agent), ctx)
    desk.execute(incident.id, Comment(text=f"called {caller} back"), ctx)
    container.feed.catch_up()
    return str(incident.id)


def test_an_erased_caller_reads_erased_and_others_do_not(container, client, auth):
    dana = _incident(container, "Dana Scully", "erin")
    fox = _incident(container, "Fox Mulder", "erin")
    response = _erase(client, auth, caller="Dana Scully")
    assert response.status_code == 201, response.text
    assert response.json()["aggregates"] == [dana] and response.json()["already"] is False
    shown = client.get(f"/v1/incidents/{dana}", headers=auth()).json()
    assert (shown["caller"], shown["title"], shown["assignee"]) == ("[erased]", "[erased]", "erin")
    assert client.get(f"/v1/incidents/{fox}", headers=auth()).json()["caller"] == "Fox Mulder"
    again = _erase(client, auth, caller="Dana Scully")
    assert again.status_code == 404  # nothing is held about her any more


def test_an_erased_agent_reads_erased_wherever_they_acted(container, client, auth):
    dana = _incident(container, "Dana Scully", "erin")
    by_name = client.get("/v1/audit/events", params={"actor": "erin"}, headers=auth(Role.AUDITOR))
    assert {e["actor"]["id"] for e in by_name.json()["items"]} == {"erin"}
    assert (
        client.get("/v1/incidents", params={"assignee": "erin"}, headers=auth()).json()["total"]
        == 1
    )
    assert _erase(client, auth, person="erin").status_code == 201
    shown = client.get(f"/v1/incidents/{dana}", headers=auth()).json()
    assert shown["assignee"] == "[erased]" and shown["caller"] == "Dana Scully"
    timeline = client.get(f"/v1/incidents/{dana}/timeline", headers=auth(Role.AUDITOR)).json()
    assert {e["actor"]["id"] for e in timeline} == {"[erased]"}
    assert "erin" not in str(timeline)


def test_a_report_says_what_is_held_and_only_admins_may_ask(container, client, auth):
    dana = _incident(container, "Dana Scully", "erin")
    report = client.post(
        "/v1/privacy/reports", json={"caller": "dana scully"}, headers=auth(Role.ADMIN)
    )
    assert report.status_code == 200 and report.json()["aggregates"] == [dana]
    assert report.json()["has_key"] is True
    for role in (Role.MANAGER, Role.AUDITOR, Role.AGENT):
        assert _erase(client, auth, role, caller="Dana Scully").status_code == 403
    both = client.post(
        "/v1/privacy/reports", json={"caller": "x", "person": "y"}, headers=auth(Role.ADMIN)
    )
    assert both.status_code == 422
