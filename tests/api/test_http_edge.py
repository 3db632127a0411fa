"""The HTTP edge is as strict as the domain (docs/http.md): bounded parameters, bounded
requests, strict bodies, one rule for 400 and 422, and safe exports."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient

from api.app import create_app
from api.edge import MAX_URL_BYTES
from api.kpi.paging import decode_cursor, encode_cursor, neutralise
from application.access import Role
from tests.api.conftest import NEW_INCIDENT

PROBLEM = "application/problem+json"
POLICY = {"name": "Mail", "targets": {"resolve": {"*": "PT4H"}}}
TODAY = datetime.now(timezone.utc).date()


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["detail"]
    return body


# -- what the fuzzer found: server errors that are 422 problems now ---------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/v1/incidents?offset=9223372036854775808",
        "/v1/sla/at-risk?within=P999999999D",
        "/v1/sla/breaches?to=0001-01-01",
        "/v1/sla/breaches?to=0001-01-01T00:00:00Z",
        "/v1/sla/compliance?to=0001-01-01T00:00:00Z",
        "/v1/sla/breaches?to=0.5",
        "/v1/sla/breaches?from=2026-01-01T00:00:00",
        "/v1/sla/compliance?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
        "/v1/kpis?to=9999-12-31",
        "/v1/kpis?from=0001-01-01&to=9999-12-31&period=day",
        "/v1/kpis?from=2026-02-01&to=2026-01-01",
        "/v1/kpis?cursor=nonsense",
        "/v1/incidents?group=mail%00x",
        "/v1/incidents/00000000-0000-0000-0000-000000000001?as_of=0.5",
        "/v1/incidents/00000000-0000-0000-0000-000000000001?as_of=0001-01-01T00:00:00Z",
    ],
)
def test_out_of_range_query_parameters_are_422_problems(client, auth, url):
    _problem(client.get(url, headers=auth(Role.ADMIN)), 422)


def test_a_simulation_with_an_endless_target_is_refused_at_once(client, auth):
    draft = {"name": "Draft", "targets": {"resolve": {"*": "P999999999D"}}}
    body = {"draft": draft, "from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"}
    started = time.perf_counter()
    response = client.post("/v1/sla/simulations", json=body, headers=auth(Role.ANALYST))
    assert "366 days" in _problem(response, 422)["detail"]
    assert time.perf_counter() - started < 2


def test_a_policy_needs_a_target(client, auth):
    response = client.post("/v1/sla/policies", json={"name": "Empty"}, headers=auth(Role.MANAGER))
    assert "at least one target" in _problem(response, 422)["detail"]


# -- bounded requests ----------------------------------------------------------------------------


def test_without_a_key_the_body_is_never_read(container):
    """A 50 MB body without a key: 401 before one byte of it is received."""
    app, received, sent = create_app(container), [], []

    async def receive():
        received.append(1)
        return {"type": "http.request", "body": b"x" * 50_000_000, "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/incidents",
        "raw_path": b"/v1/incidents",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"50000000")],
        "scheme": "http",
        "server": ("testserver", 80),
        "client": ("tester", 1),
        "root_path": "",
        "http_version": "1.1",
    }
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 401 and received == []


def test_malformed_json_is_401_without_a_key_and_400_with_one(client, auth):
    bad = {"content": b'{"title": ', "headers": {"content-type": "application/json"}}
    _problem(client.post("/v1/incidents", **bad), 401)
    with_key = {**bad, "headers": {**bad["headers"], **auth()}}
    assert _problem(client.post("/v1/incidents", **with_key), 400)["type"].endswith(
        "malformed-json"
    )


def test_a_body_over_the_limit_is_413(container, auth):
    limit = 4096
    client = TestClient(create_app(container, max_body_bytes=limit), raise_server_exceptions=False)
    big = b'{"title": "' + b"x" * limit + b'"}'
    headers = {**auth(), "content-type": "application/json"}
    _problem(client.post("/v1/incidents", content=big, headers=headers), 413)
    _problem(client.post("/v1/sla/policies", content=big, headers=headers), 413)

    def chunks():  # no Content-Length: counted as it arrives
        yield big[: limit // 2]
        yield big[limit // 2 :]

    _problem(client.post("/v1/incidents", content=chunks(), headers=headers), 413)


def test_a_long_url_is_a_414_problem(client, auth):
    url = "/v1/incidents?number=" + "9" * MAX_URL_BYTES
    _problem(client.get(url, headers=auth()), 414)


# -- strict input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change", [{"impact": "1"}, {"impact": True}, {"urgency": 1.5}, {"urgency": "2"}]
)
def test_numbers_are_json_numbers(client, auth, change):
    body = {**NEW_INCIDENT, **change}
    _problem(client.post("/v1/incidents", json=body, headers=auth()), 422)


@pytest.mark.parametrize(
    "action, body",
    [
        ("comment", {"text": "hello", "public": "yes"}),
        ("comment", {"text": "hello", "public": 1}),
        ("reprioritise", {"impact": "1", "urgency": 1}),
    ],
)
def test_booleans_and_levels_are_not_coerced(log_incident, act, action, body):
    _problem(act(log_incident()["id"], action, body), 422)


def test_a_policy_rank_or_flag_is_not_coerced(client, auth):
    for change in ({"rank": "1"}, {"active": "yes"}, {"targets": {"resolve": {"*": "3600"}}}):
        response = client.post(
            "/v1/sla/policies", json={**POLICY, **change}, headers=auth(Role.MANAGER)
        )
        _problem(response, 422)


def test_putting_the_same_policy_again_changes_nothing(client, auth, container):
    created = client.post("/v1/sla/policies", json=POLICY, headers=auth(Role.MANAGER)).json()
    path, before = f"/v1/sla/policies/{created['id']}", container.desk.stored_events()
    again = client.put(path, json=POLICY, headers=auth(Role.MANAGER))
    assert (again.status_code, again.json()["version"]) == (200, created["version"])
    assert again.headers["ETag"] == f'"{created["version"]}"'
    same = client.patch(path, json={"name": "Mail"}, headers=auth(Role.MANAGER))
    assert (same.status_code, same.json()["version"]) == (200, created["version"])
    assert container.desk.stored_events() == before
    changed = client.patch(path, json={"name": "Post"}, headers=auth(Role.MANAGER))
    assert changed.json()["version"] == created["version"] + 1


def test_405_lists_every_allowed_method(client, auth):
    response = client.options("/v1/incidents", headers=auth())
    _problem(response, 405)
    assert {"GET", "POST"} <= set(response.headers["Allow"].split(", "))
    response = client.delete(
        "/v1/sla/policies/00000000-0000-0000-0000-000000000001", headers=auth()
    )
    assert {"GET", "PATCH", "PUT"} <= set(_allow(response))


def _allow(response) -> list[str]:
    _problem(response, 405)
    return response.headers["Allow"].split(", ")


def test_a_bad_if_match_names_the_resource(client, auth, log_incident, act):
    incident = log_incident()
    bad = {"If-Match": "banana"}
    assert "incident" in _problem(act(incident["id"], "acknowledge", headers=bad), 400)["detail"]
    created = client.post("/v1/sla/policies", json=POLICY, headers=auth(Role.MANAGER)).json()
    response = client.patch(
        f"/v1/sla/policies/{created['id']}",
        json={"rank": 2},
        headers=auth(Role.MANAGER, **bad),
    )
    assert "SLA policy" in _problem(response, 400)["detail"]


# -- output safety ---------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_formula_cells_are_neutralised(cell):
    assert neutralise(cell) == "'" + cell


def test_plain_cells_and_numbers_are_left_alone():
    assert (neutralise("desk"), neutralise(-1.5), neutralise(None)) == ("desk", -1.5, None)


def test_the_kpi_csv_neutralises_a_hostile_group(client, auth, container, log_incident, act):
    hostile = '=HYPERLINK("http://evil","x")'
    assert act(log_incident()["id"], "assign", {"group": hostile}).status_code == 200
    container.feed.catch_up()
    response = client.get(
        "/v1/kpis",
        params={"group_by": "group", "period": "day"},
        headers=auth(Role.ANALYST, Accept="text/csv"),
    )
    assert response.status_code == 200, response.text
    groups = {row["group"] for row in csv.DictReader(io.StringIO(response.text))}
    assert "'" + hostile in groups and hostile not in groups


def test_kpi_json_comes_in_pages(client, auth, container, log_incident):
    log_incident()
    container.feed.catch_up()
    params = {"from": (TODAY - timedelta(days=4)).isoformat(), "to": TODAY.isoformat()}
    params |= {"period": "day", "limit": "2"}
    seen, cursor = [], None
    while True:
        page = client.get(
            "/v1/kpis",
            params={**params, **({"cursor": cursor} if cursor else {})},
            headers=auth(Role.ANALYST),
        ).json()
        seen += [row["period"] for row in page["rows"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert len(seen) == 5 and seen == sorted(seen)


def test_cursors_are_opaque_and_checked():
    assert decode_cursor(encode_cursor((738000, 12))) == (738000, 12)
    with pytest.raises(RequestValidationError):
        decode_cursor("not a cursor")
    with pytest.raises(RequestValidationError):
        decode_cursor("cDE")  # base64 of "p1": not ours
    with pytest.raises(RequestValidationError):
        decode_cursor("bzEyMzQ")  # base64 of "o1234": an offset, as pages used to be cut
