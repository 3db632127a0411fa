"""An improvement's trend (JSON, SVG, PNG) and its report (HTML, PDF) over HTTP: the weekly
figures are the KPI read model's, the report shows the control table and escapes user text."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from application.access import Role
from tests.api.test_improvement_verification_api import (  # noqa: F401  (fixtures)
    GOAL,
    SCOPE,
    _improvement,
    act,
    history,
    propose,
)
from tests.api.test_improvements_api import _ok, _problem

BACKLOG = {**GOAL, "id": "backlog", "kpi": "backlog", "target": {"kind": "absolute", "value": 1}}
OPENED = {**GOAL, "id": "opened", "kpi": "opened", "target": {"kind": "absolute", "value": 1}}
SCRIPT = "<script>alert('x')</script>"


@pytest.fixture
def improvement(history, act, propose):  # noqa: F811
    """In implementation, scope the desk group, goals on time to resolve, backlog, intake."""
    ident = _improvement(act, propose, "in_implementation")
    version = _ok(act(ident, "goals", {"goals": [GOAL, BACKLOG, OPENED]}, method="PUT"))
    assert version["state"] == "designed"  # a goal edit after approval: approve again
    _ok(act(ident, "approve", {"plan_version": 4}, Role.MANAGER))
    _ok(act(ident, "start"))
    return ident


def _get(client, auth, ident, segment, role=Role.ANALYST, **params):
    return client.get(f"/v1/improvements/{ident}/{segment}", params=params, headers=auth(role))


def test_the_weekly_trend_is_the_kpi_read_models_weekly_figure(client, auth, improvement):
    response = _get(client, auth, improvement, "trend", format="json")
    assert response.status_code == 200, response.text
    trend = response.json()
    assert trend["weeks"][0] == "2025-12-29"  # the Monday of the earliest baseline start
    assert trend["weeks"][-1] == "2026-03-30"  # the week of the latest review end
    kpis = client.get(
        "/v1/kpis",
        params={"period": "week", "group_by": "group", "from": "2025-12-29", "to": "2026-04-05"},
        headers=auth(Role.ANALYST),
    ).json()
    desk = {row["period"]: row for row in kpis["rows"] if row["group"] == "desk"}
    compared = 0
    for goal in trend["goals"]:
        for week, value in zip(trend["weeks"], goal["values"], strict=True):
            expected = desk[week][goal["kpi"]] if week in desk else None
            if expected is None:
                assert value in (None, 0), (goal["kpi"], week, value)
            else:
                assert value == pytest.approx(expected), (goal["kpi"], week)
                compared += 1
    assert compared >= 6  # the baseline and review weeks of the desk's incidents
    ttr = next(g for g in trend["goals"] if g["goal_id"] == "ttr")
    assert sorted(v for v in ttr["values"] if v is not None) == pytest.approx([5.0, 10.0])
    kinds = [m["kind"] for m in trend["milestones"]]
    assert kinds == ["approved", "implementation started"] * 2


def test_the_chart_is_svg_by_default_png_on_request_and_406_otherwise(client, auth, improvement):
    svg = _get(client, auth, improvement, "trend")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(svg.content)
    texts = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert "baseline period" in texts and "review period" in texts and "backlog" in texts
    png = _get(client, auth, improvement, "trend", format="png")
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    headers = {**auth(Role.AUDITOR), "Accept": "image/png"}
    chosen = client.get(f"/v1/improvements/{improvement}/trend", headers=headers)
    assert chosen.headers["content-type"] == "image/png"
    headers["Accept"] = "text/csv"
    _problem(
        client.get(f"/v1/improvements/{improvement}/trend", headers=headers), 406, "not-acceptable"
    )


def test_the_report_shows_a_progress_view_marked_not_recorded(client, auth, improvement):
    response = _get(client, auth, improvement, "report")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    html = response.text
    assert "Not recorded:" in html and "progress view" in html
    # The control table: the desk's 10 h baseline and 5 h review, 3 incidents each.
    table = html[html.index("<h2>Control table") :]
    row = table[table.index("<td>ttr</td>") :].split("</tr>")[0]
    cells = [c.split(">", 1)[1] for c in row.split("</td>")[:-1]]
    assert cells[3:9] == ["10", "3", "5", "3", "8", "yes"]
    assert "<svg" in html and "kpis-1" in html  # the chart inline; the pinned definitions


def test_free_text_is_escaped(client, auth, history, act, propose):  # noqa: F811
    ident = propose(motivation=SCRIPT, name="<b>bold</b>")["id"]
    html = _get(client, auth, ident, "report").text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert SCRIPT not in html and "<b>bold</b>" not in html
    assert "No goals yet." in html  # and no control table to compute


def test_a_recorded_verification_is_the_reports_control_table(client, auth, history, act, propose):  # noqa: F811
    ident = _improvement(act, propose, "in_review")
    version = client.get(f"/v1/improvements/{ident}", headers=auth()).json()["version"]
    _ok(act(ident, "verify", {"record": True}, **{"If-Match": f'"{version}"'}))
    html = _get(client, auth, ident, "report", role=Role.AUDITOR).text
    assert "Verification 1, recorded" in html and "Not recorded" not in html
    assert "only 3 tickets" in html  # the small-sample warning, from the recorded counts


def test_the_report_as_pdf(client, auth, improvement):
    response = _get(client, auth, improvement, "report", format="pdf")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    headers = {**auth(), "Accept": "application/pdf"}
    chosen = client.get(f"/v1/improvements/{improvement}/report", headers=headers)
    assert chosen.headers["content-type"] == "application/pdf"


def test_readers_only_and_unknown_improvements(client, auth):
    unknown = "00000000-0000-4000-8000-000000000000"
    _problem(_get(client, auth, unknown, "report"), 404, "not-found")
    _problem(_get(client, auth, unknown, "trend", role=Role.INTEGRATION), 403)
