"""Reading the continual improvement register over HTTP: the list (filters, pages), the
register as JSON and CSV, one improvement as of a past moment, its audit timeline, and who
may read them."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from urllib.parse import quote
from uuid import uuid4

import pytest

from application.access import Role

PROBLEM = "application/problem+json"
READERS = (Role.AGENT, Role.MANAGER, Role.ANALYST, Role.AUDITOR, Role.ADMIN)


@pytest.fixture
def propose(client, auth):
    def run(name: str = "Faster first response", **design) -> dict:
        body = {"name": name, "area": "process", **design}
        response = client.post("/v1/improvements", json=body, headers=auth(Role.AGENT))
        assert response.status_code == 201, response.text
        return response.json()

    return run


@pytest.fixture
def act(client, auth):
    def run(improvement_id: str, segment: str, body: dict | None = None, role=Role.MANAGER):
        response = client.post(
            f"/v1/improvements/{improvement_id}/{segment}", json=body, headers=auth(role)
        )
        assert response.status_code == 200, response.text
        return response.json()

    return run


@pytest.fixture
def read(client, auth):
    def get(path: str, role: Role = Role.ANALYST, status: int = 200, **headers: str):
        response = client.get(path, headers=auth(role, **headers))
        assert response.status_code == status, response.text
        return response

    return get


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    return response.json()


def test_the_list_filters_and_pages_the_register(container, propose, act, read):
    mail = propose("Mail triage", owner="ann", services=["mail"])
    both = propose("Shared runbooks", owner="bob", services=["mail", "vpn"])
    vpn = propose("VPN self-help", owner="ann", services=["vpn"])
    act(both["id"], "accept")
    act(vpn["id"], "withdraw", {"reason": "superseded"}, role=Role.AGENT)
    container.feed.catch_up()

    page = read("/v1/improvements").json()
    assert (page["total"], page["limit"], page["next"]) == (3, 50, None)
    assert [i["number"] for i in page["items"]] == [
        vpn["number"],
        both["number"],
        mail["number"],
    ]
    first = page["items"][0]
    assert (first["state"], first["outcome"], first["owner"]) == ("closed", "withdrawn", "ann")
    assert first["services"] == ["vpn"] and first["version"] == 2

    def numbers(query: str) -> list[str]:
        return [i["number"] for i in read(f"/v1/improvements?{query}").json()["items"]]

    assert numbers("owner=ann") == [vpn["number"], mail["number"]]
    assert numbers("service=vpn") == [vpn["number"], both["number"]]
    assert numbers("state=accepted&service=mail") == [both["number"]]
    assert numbers("state=declined") == []

    one = read("/v1/improvements?limit=2").json()
    assert [i["number"] for i in one["items"]] == [vpn["number"], both["number"]]
    two = read(f"/v1/improvements?limit=2&cursor={one['next']}").json()
    assert [i["number"] for i in two["items"]] == [mail["number"]] and two["next"] is None


def test_a_cursor_the_api_did_not_give_is_a_422(client, auth):
    for cursor in ("nonsense", "cDEuMg"):
        response = client.get(f"/v1/improvements?cursor={cursor}", headers=auth(Role.ANALYST))
        body = _problem(response, 422)
        assert [e["field"] for e in body["errors"]] == ["cursor"]
    response = client.get("/v1/improvements?state=finished", headers=auth(Role.ANALYST))
    _problem(response, 422)


def test_the_register_as_json_and_as_csv(container, propose, act, read):
    plain = propose("Mail triage", owner="ann")
    formula = propose("=HYPERLINK(1)", owner="bob")
    act(plain["id"], "decline", {"reason": "covered elsewhere"})
    container.feed.catch_up()

    entries = read("/v1/improvements/register").json()
    assert entries == [
        {
            "id": plain["id"],
            "number": plain["number"],
            "name": "Mail triage",
            "state": "declined",
            "owner": "ann",
            "outcome": None,
        },
        {
            "id": formula["id"],
            "number": formula["number"],
            "name": "=HYPERLINK(1)",
            "state": "proposed",
            "owner": "bob",
            "outcome": None,
        },
    ]
    by_accept = read("/v1/improvements/register", accept="text/csv")
    by_format = read("/v1/improvements/register?format=csv")
    assert by_accept.text == by_format.text
    assert by_accept.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(by_accept.text)))
    assert rows == [
        ["number", "name", "state", "owner", "outcome"],
        [plain["number"], "Mail triage", "declined", "ann", ""],
        [formula["number"], "'=HYPERLINK(1)", "proposed", "bob", ""],
    ]
    # format=json wins over the Accept header.
    assert read("/v1/improvements/register?format=json", accept="text/csv").json() == entries


def test_as_of_replays_the_improvement_as_it_stood_then(propose, act, read, log_incident):
    before = datetime.now(UTC)
    created = propose(owner="ann")
    proposed = datetime.now(UTC)
    act(created["id"], "accept", {"note": "worth it"})
    act(created["id"], "withdraw", {"reason": "moot"}, role=Role.AGENT)

    path = f"/v1/improvements/{created['id']}"
    then = read(f"{path}?as_of={quote(proposed.isoformat())}", Role.AUDITOR)
    document = then.json()
    assert (document["state"], document["version"], document["outcome"]) == ("proposed", 1, None)
    assert document["as_of"] == proposed.isoformat() and then.headers["ETag"] == '"1"'
    assert document["design"]["owner"] == "ann" and document["proposed_by"] == "agent-user"

    now = read(f"{path}?as_of={quote(datetime.now(UTC).isoformat())}").json()
    current = read(path).json()
    assert "as_of" not in current
    same = ("number", "state", "outcome", "reason", "design", "plan_version", "version")
    assert {k: now[k] for k in same} == {k: current[k] for k in same}

    missing = read(f"{path}?as_of={quote(before.isoformat())}", status=404)
    assert "did not exist" in _problem(missing, 404)["detail"]
    _problem(read(f"{path}?as_of=2026-01-01T10:00:00", status=422), 422)
    incident = log_incident()["id"]
    now_text = quote(datetime.now(UTC).isoformat())
    _problem(read(f"/v1/improvements/{incident}?as_of={now_text}", status=404), 404)
    _problem(read(f"/v1/improvements/{incident}", status=404), 404)


def test_the_timeline_shows_who_changed_what(container, propose, act, read):
    created = propose(owner="ann")
    act(created["id"], "accept", {"note": "worth it"})
    path = f"/v1/improvements/{created['id']}/timeline"
    assert read(path).json() == []  # the audit trail has not caught up yet
    container.feed.catch_up()

    proposal, accepted = read(path, Role.AUDITOR).json()
    assert (proposal["event"], proposal["version"]) == ("Proposed", 1)
    assert {"field": "number", "before": None, "after": created["number"]} in proposal["changes"]
    assert accepted["event"] == "Accepted" and accepted["actor"]["id"] == "manager-user"
    assert accepted["changes"] == [{"field": "state", "before": "proposed", "after": "accepted"}]
    assert accepted["details"]["note"] == "worth it"

    _problem(read(f"/v1/improvements/{uuid4()}/timeline", status=404), 404)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/improvements",
        "/v1/improvements/register",
        "/v1/improvements/{id}",
        "/v1/improvements/{id}?as_of=2026-01-01T00:00:00Z",
        "/v1/improvements/{id}/timeline",
    ],
)
def test_readers_may_read_and_nobody_else(client, auth, propose, path):
    url = path.format(id=propose()["id"])
    for role in READERS:
        assert client.get(url, headers=auth(role)).status_code in (200, 404), role
    _problem(client.get(url, headers=auth(Role.INTEGRATION)), 403)
    _problem(client.get(url), 401)
