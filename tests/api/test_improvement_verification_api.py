"""Verification by replay over HTTP: the control table computed from the history, recorded
in review, and the same figures computed again from its pins after more events and after the
KPI read model is rebuilt (application/improvement/verification.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from application.access import Role
from domain.incident.commands import Acknowledge, Assign, LogIncident, Reopen, Resolve
from domain.shared_kernel.actor import Actor, ActorKind
from domain.shared_kernel.command_context import Context
from tests.api.test_improvements_api import DESIGN, PLAN, _ok, _problem

BASELINE = {"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z"}
REVIEW = {"start": "2026-03-01T00:00:00Z", "end": "2026-04-01T00:00:00Z"}
GOAL = {
    "id": "ttr",
    "kpi": "ttr_mean_hours",
    "direction": "decrease",
    "target": {"kind": "relative", "value": 0.2},
    "baseline": BASELINE,
    "review": REVIEW,
}
SCOPE = {"groups": ["desk"]}


def _at(when: datetime) -> Context:
    return Context(Actor("monitoring", ActorKind.UPSTREAM), "history", occurred_at=when)


def _incident(container, group: str, opened: datetime, hours: float) -> UUID:
    """An incident of `group` opened then, resolved `hours` later."""
    desk = container.desk
    log = LogIncident(title="Mail down", caller="bob", impact=2, urgency=2)
    incident = desk.create(log, _at(opened))
    desk.execute(incident.id, Assign(group=group, agent="ann"), _at(opened + timedelta(minutes=5)))
    desk.execute(incident.id, Acknowledge(), _at(opened + timedelta(minutes=10)))
    desk.execute(incident.id, Resolve(code="fixed"), _at(opened + timedelta(hours=hours)))
    return incident.id


@pytest.fixture
def history(container):
    """Desk incidents resolved in 10 h in the baseline, in 5 h in the review; network ones in
    8 h in both (the comparison: the whole desk)."""
    ids = {"baseline": [], "review": []}
    for day in range(3):
        ids["baseline"].append(
            _incident(container, "desk", datetime(2026, 1, 5 + day, 9, tzinfo=UTC), 10)
        )
        ids["review"].append(
            _incident(container, "desk", datetime(2026, 3, 5 + day, 9, tzinfo=UTC), 5)
        )
        _incident(container, "network", datetime(2026, 1, 12 + day, 9, tzinfo=UTC), 8)
        _incident(container, "network", datetime(2026, 3, 12 + day, 9, tzinfo=UTC), 8)
    container.feed.catch_up()
    return ids


def _improvement(act, propose, state: str) -> str:
    ident = propose(scope=SCOPE)["id"]
    _ok(act(ident, "accept", role=Role.MANAGER))
    _ok(act(ident, "design", {**DESIGN, "owner": "carol", "scope": SCOPE}, method="PUT"))
    _ok(act(ident, "goals", {"goals": [GOAL]}, method="PUT"))
    _ok(act(ident, "plan", PLAN, method="PUT"))
    _ok(act(ident, "submit"))
    _ok(act(ident, "approve", {"plan_version": 3}, Role.MANAGER))
    _ok(act(ident, "start"))
    if state == "in_review":
        for action in ("rota", "bot", "kb"):
            _ok(act(ident, "complete-action", {"action_id": action}))
        _ok(act(ident, "complete-implementation"))
    return ident


@pytest.fixture
def propose(client, auth):
    def run(**design) -> dict:
        response = client.post("/v1/improvements", json={**DESIGN, **design}, headers=auth())
        assert response.status_code == 201, response.text
        return response.json()

    return run


@pytest.fixture
def act(client, auth):
    def run(ident, segment, body=None, role=Role.AGENT, method="POST", **headers):
        url = f"/v1/improvements/{ident}/{segment}"
        return client.request(method, url, json=body, headers=auth(role, **headers))

    return run


def test_a_progress_view_computes_the_control_table_from_the_history(history, act, propose):
    ident = _improvement(act, propose, "in_implementation")
    view = _ok(act(ident, "verify", None, Role.ANALYST))
    assert view["recorded"] is False and view["verification"] is None
    (row,) = view["control_table"]
    assert row["baseline"] == {"value": pytest.approx(10.0), "count": 3}
    assert row["review"] == {"value": pytest.approx(5.0), "count": 3}
    assert row["target"] == pytest.approx(8.0) and row["met"] is True
    # The whole desk: the network's 8 h beside the desk's, in both periods.
    assert row["comparison"]["baseline"] == {"value": pytest.approx(9.0), "count": 6}
    assert row["comparison"]["review"] == {"value": pytest.approx(6.5), "count": 6}
    assert any("only 3 tickets" in w for w in row["warnings"])
    assert view["pinned"]["kpi_definitions_version"] == "kpis-1"
    assert view["pinned"]["log_position"] == view["pinned"]["baseline_log_position"] > 0


def test_a_chosen_comparison_scope_is_pinned_and_used(history, act, propose):
    ident = _improvement(act, propose, "in_implementation")
    body = {"comparison_scope": {"groups": ["network"]}}
    (row,) = _ok(act(ident, "verify", body))["control_table"]
    assert row["comparison"]["baseline"] == {"value": pytest.approx(8.0), "count": 3}


def test_a_recorded_verification_is_reproduced_after_more_events_and_a_rebuild(
    container, client, auth, history, act, propose
):
    ident = _improvement(act, propose, "in_review")
    version = client.get(f"/v1/improvements/{ident}", headers=auth()).json()["version"]
    recorded = _ok(act(ident, "verify", {"record": True}, **{"If-Match": f'"{version}"'}))
    assert recorded["recorded"] is True and recorded["verification"] == 1

    # After the pin: a baseline incident is reopened and another one is logged into January.
    reopened = history["baseline"][0]
    container.desk.execute(reopened, Reopen(), _at(datetime(2026, 1, 20, tzinfo=UTC)))
    _incident(container, "desk", datetime(2026, 1, 25, 9, tzinfo=UTC), 30)
    container.feed.catch_up()
    months = client.get("/v1/kpis?period=month&group_by=group", headers=auth(Role.ANALYST))
    january = [
        r for r in months.json()["rows"] if r["period"] == "2026-01" and r["group"] == "desk"
    ]
    assert january[0]["resolved"] == 4  # the read model moved on; the pinned baseline did not
    progress = _ok(act(ident, "verify"))["control_table"][0]
    assert progress["baseline"] == recorded["control_table"][0]["baseline"]

    runner = container.runner("kpis")
    runner.reset()
    container.feed.catch_up()
    again = client.get(f"/v1/improvements/{ident}/verification", headers=auth(Role.AUDITOR))
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["identical"] is True, body
    assert body["recomputed"][0]["baseline"] == {"value": pytest.approx(10.0), "count": 3}


def test_recording_needs_a_worker_and_the_review(history, act, propose):
    ident = _improvement(act, propose, "in_implementation")
    _problem(act(ident, "verify", {"record": True}, Role.ANALYST), 403)
    _problem(act(ident, "verify", {"record": True}), 409, "illegal-transition")


def test_no_recorded_verification_is_a_404(client, auth, history, act, propose):
    ident = _improvement(act, propose, "in_implementation")
    response = client.get(f"/v1/improvements/{ident}/verification", headers=auth())
    _problem(response, 404, "not-found")
