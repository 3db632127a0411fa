"""GET /v1/audit/events: the audit trail of every aggregate, filtered by actor, aggregate
type, cause and time, paged by cursor, exported whole as CSV or JSON Lines."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from application.access import Role
from domain.incident.commands import Assign, Comment, LogIncident
from domain.shared_kernel.actor import Actor, ActorKind
from domain.shared_kernel.command_context import Context

DAY = datetime(2026, 3, 2, 9, tzinfo=UTC)


@pytest.fixture
def history(container) -> dict[str, list[str]]:
    """Incidents worked by erin (a person) and by a monitoring system, a day apart."""
    made: dict[str, list[str]] = {"erin": [], "monitoring": []}
    for n, (who, kind) in enumerate(
        [("erin", ActorKind.PERSON), ("monitoring", ActorKind.UPSTREAM)] * 3
    ):
        ctx = Context(Actor(who, kind), f"req-{who}-{n}", occurred_at=DAY + timedelta(days=n))
        incident = container.desk.create(
            LogIncident(title=f"=cmd|' /C calc'!A{n}", caller="bob", impact=2, urgency=2), ctx
        )
        container.desk.execute(incident.id, Assign(group="desk"), ctx)
        container.desk.execute(incident.id, Comment(text="looked"), ctx)
        made[who].append(str(incident.id))
    container.feed.catch_up()
    return made


def _get(client, auth, role=Role.AUDITOR, **params):
    return client.get("/v1/audit/events", params=params, headers=auth(role))


def test_events_of_one_actor_across_aggregates(client, auth, history):
    body = _get(client, auth, actor="monitoring").json()
    assert body["next"] is None
    incidents = {e["aggregate_id"] for e in body["items"] if e["aggregate_type"] == "Incident"}
    assert incidents == set(history["monitoring"])
    assert {e["actor"]["id"] for e in body["items"]} == {"monitoring"}
    positions = [e["position"] for e in body["items"]]
    assert positions == sorted(positions)


def test_filters_by_type_cause_and_time(client, auth, history):
    incidents = _get(client, auth, aggregate_type="Incident").json()["items"]
    assert len(incidents) == 18 and {e["aggregate_type"] for e in incidents} == {"Incident"}
    caused = _get(client, auth, causation_id="req-erin-2").json()["items"]
    assert {e["aggregate_id"] for e in caused if e["aggregate_type"] == "Incident"} == {
        history["erin"][1]
    }
    window = {
        "from": (DAY + timedelta(days=1)).isoformat(),
        "to": (DAY + timedelta(days=3)).isoformat(),
    }
    in_window = _get(client, auth, aggregate_type="Incident", **window).json()["items"]
    assert {e["aggregate_id"] for e in in_window} == {history["monitoring"][0], history["erin"][1]}


def test_pages_follow_each_other_without_gap_or_repeat(client, auth, history):
    everything = _get(client, auth, limit=1000).json()["items"]
    seen, cursor = [], None
    while True:
        params = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        page = _get(client, auth, **params).json()
        seen += [e["position"] for e in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == [e["position"] for e in everything]


def test_a_csv_export_holds_every_event_with_its_changes(client, auth, history):
    response = _get(client, auth, format="csv", aggregate_type="Incident")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 18
    logged = [r for r in rows if r["event"] == "Logged"]
    titles = [c["after"] for r in logged for c in json.loads(r["changes"]) if c["field"] == "title"]
    assert sorted(titles) == sorted(f"=cmd|' /C calc'!A{n}" for n in range(6))
    assert all(not line.startswith(("=", "+", "-", "@")) for line in response.text.splitlines())


def test_a_json_lines_export_by_accept_header(client, auth, history):
    response = client.get(
        "/v1/audit/events",
        params={"actor": "erin"},
        headers={**auth(Role.AUDITOR), "Accept": "application/x-ndjson"},
    )
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert {e["actor"]["id"] for e in lines} == {"erin"}
    assert len([e for e in lines if e["aggregate_type"] == "Incident"]) == 9


def test_bad_input_is_a_422_and_only_auditors_and_managers_may_read(client, auth, history):
    assert _get(client, auth, cursor="not-a-cursor").status_code == 422
    assert _get(client, auth, **{"from": "2026-03-05", "to": "2026-03-01"}).status_code == 422
    assert _get(client, auth, limit=0).status_code == 422
    assert _get(client, auth, Role.AGENT).status_code == 403
    assert _get(client, auth, Role.ANALYST).status_code == 403
    assert _get(client, auth, Role.MANAGER).status_code == 200
