"""GET /v1/kpis (JSON and CSV) and /v1/kpis/chart (SVG, PNG), over a real desk on SQLite."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest

from application.access import Role

TODAY = datetime.now(timezone.utc).date()
RANGE = {"from": (TODAY - timedelta(days=1)).isoformat(), "to": TODAY.isoformat()}


@pytest.fixture
def worked(container, log_incident, act):
    """Three incidents: one resolved and closed (satisfied), one reassigned, one untouched."""
    first = log_incident(service="email", category="software")
    for action, body in [
        ("assign", {"group": "desk", "agent": "carol"}),
        ("acknowledge", None),
        ("resolve", {"code": "fixed"}),
        ("close", {"satisfaction": 5}),
    ]:
        assert act(first["id"], action, body).status_code == 200
    second = log_incident(impact=1, urgency=1, service="vpn", category="network")
    for action, body in [
        ("assign", {"group": "desk"}),
        ("assign", {"group": "network"}),
        ("resolve", {"code": "fixed"}),
    ]:
        assert act(second["id"], action, body).status_code == 200
    log_incident()
    container.feed.catch_up()
    return first, second


def test_analysts_get_kpis_as_json(client, auth, worked):
    response = client.get("/v1/kpis", params={**RANGE, "period": "day"}, headers=auth(Role.ANALYST))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["period"] == "day" and body["group_by"] is None and body["timezone"] == "UTC"
    today = [r for r in body["rows"] if r["period"] == TODAY.isoformat()]
    assert len(body["rows"]) == 2 and len(today) == 1
    row = today[0]
    assert (row["opened"], row["resolved"], row["closed"], row["backlog"]) == (3, 2, 1, 1)
    assert row["fcr_rate"] == 0.5 and row["reassignments_per_incident"] == 0.5
    assert row["csat_mean"] == 5 and row["nps"] == 100
    assert row["ttr_mean_hours"] >= 0 and row["mtta_hours"] >= 0
    assert {s["state"] for s in body["steps"]} >= {"new", "resolved"}


def test_group_by_priority_and_default_range(client, auth, worked):
    response = client.get(
        "/v1/kpis", params={"group_by": "priority", "period": "month"}, headers=auth(Role.MANAGER)
    )
    assert response.status_code == 200, response.text
    rows = response.json()["rows"]
    assert {r["priority"]: r["opened"] for r in rows if r["opened"]} == {"P1": 1, "P3": 2}


def test_csv_on_accept_text_csv(client, auth, worked):
    response = client.get(
        "/v1/kpis",
        params={**RANGE, "period": "day", "group_by": "group"},
        headers=auth(Role.ANALYST, accept="text/csv"),
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert list(rows[0])[:4] == ["period", "period_start", "period_end", "group"]
    assert {r["group"] for r in rows if r["resolved"] not in ("", "0")} == {"desk", "network"}


def test_chart_is_an_svg_line_chart_with_a_legend(client, auth, worked):
    response = client.get(
        "/v1/kpis/chart",
        params={**RANGE, "kpi": "opened", "period": "day", "group_by": "service"},
        headers=auth(Role.ANALYST),
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("image/svg+xml")
    svg = ET.fromstring(response.content)
    texts = {t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")}
    assert {"email", "vpn", "opened per day by service"} <= texts
    lines = [
        g for g in svg.iter("{http://www.w3.org/2000/svg}g") if g.get("id", "")[:7] == "series-"
    ]
    assert lines and all(g.find("{http://www.w3.org/2000/svg}path") is not None for g in lines)


def test_chart_of_an_unknown_kpi_is_a_422(client, auth):
    response = client.get("/v1/kpis/chart", params={"kpi": "happiness"}, headers=auth(Role.ANALYST))
    assert response.status_code == 422
    assert "happiness" in response.json()["detail"]


@pytest.mark.parametrize(
    "params",
    [
        {"period": "year"},
        {"group_by": "colour"},
        {"from": "yesterday"},
        {"tz": "Mars/Olympus"},
        {"tz": "Europe/Paris"},  # a real zone, but not one the KPIs are kept in
        {"from": "2016-01-01", "to": "2015-01-01"},
        {"from": "2000-01-01", "to": "2016-01-01", "period": "day"},
    ],
)
def test_bad_queries_are_422_problems(client, auth, params):
    response = client.get("/v1/kpis", params=params, headers=auth(Role.ANALYST))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "urn:itsm:problem:validation"
    assert {error["field"] for error in problem["errors"]} <= set(params)


def _fixed(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("mean_hours_in_")}


@pytest.mark.parametrize("limit", [1, 2])
def test_pages_of_a_grouped_report_are_the_whole_report_cut(client, auth, worked, limit):
    asked = {**RANGE, "period": "day", "group_by": "group"}
    whole = client.get("/v1/kpis", params=asked, headers=auth(Role.ANALYST)).json()["rows"]
    pages, cursor = [], None
    while True:
        params = {**asked, "limit": limit, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/kpis", params=params, headers=auth(Role.ANALYST)).json()
        assert len(page["rows"]) <= limit
        pages += page["rows"]
        cursor = page["next"]
        if cursor is None:
            break
    # Time in a state runs to now, which moves between requests: compare the rest.
    assert [_fixed(r) for r in pages] == [_fixed(r) for r in whole] and len(whole) > limit
    csv_rows = client.get(
        "/v1/kpis", params=asked, headers=auth(Role.ANALYST, accept="text/csv")
    ).text.splitlines()
    assert len(csv_rows) == len(whole) + 1


@pytest.mark.parametrize("role", [Role.AGENT, Role.AUDITOR, Role.INTEGRATION])
def test_only_analysts_managers_and_admins_read_kpis(client, auth, role):
    assert client.get("/v1/kpis", headers=auth(role)).status_code == 403
    assert client.get("/v1/kpis", headers=auth(Role.ADMIN)).status_code == 200
    assert client.get("/v1/kpis").status_code == 401
