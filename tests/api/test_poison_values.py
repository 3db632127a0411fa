"""Values that would break a read model are refused at the door: 422, nothing written."""

from __future__ import annotations

from uuid import UUID

import pytest

from application.access import Role
from infra.messaging.cloudevents import cloudevent
from tests.api.conftest import NEW_INCIDENT
from tests.unit.test_inbound_source_records import snap

PROBLEM = "application/problem+json"
POLICY = {"name": "Mail", "targets": {"resolve": {"*": "PT4H"}}}


INVALID_VALUE = "urn:itsm:problem:invalid-value"
# Refused by the request's schema (durations, strict types) before the domain looks.
EITHER = (INVALID_VALUE, "urn:itsm:problem:validation")


def _refused(response, kind: str | tuple[str, ...] = INVALID_VALUE) -> dict:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["type"] in ((kind,) if isinstance(kind, str) else kind) and body["detail"]
    return body


@pytest.mark.parametrize(
    "field, value, says",
    [
        ("title", "a\u0000b", "title contains a control character (U+0000"),
        ("description", "line\u0007bell", "description contains a control character"),
        ("caller", "bob\u001b[2J", "caller contains a control character"),
        ("service", "mail\u007f", "service contains a control character"),
    ],
)
def test_logging_an_incident_with_a_control_character_is_422(
    client, auth, container, field, value, says
):
    before = container.desk.stored_events()
    body = _refused(
        client.post("/v1/incidents", json={**NEW_INCIDENT, field: value}, headers=auth(Role.AGENT))
    )
    assert says in body["detail"]
    assert container.desk.stored_events() == before


def test_a_lone_surrogate_is_422(client, auth, container):
    """The request validation refuses it first; the domain would too."""
    before = container.desk.stored_events()
    raw = b'{"title": "x\\ud800", "caller": "bob", "impact": 2, "urgency": 2}'
    body = _refused(
        client.post(
            "/v1/incidents",
            content=raw,
            headers=auth(Role.AGENT, **{"content-type": "application/json"}),
        ),
        "urn:itsm:problem:validation",
    )
    assert body["errors"][0]["field"] == "title"
    assert container.desk.stored_events() == before


def test_text_with_tabs_and_line_breaks_is_fine(log_incident):
    assert log_incident(description="first line\n\tsecond line\r\n")["version"] == 1


@pytest.mark.parametrize(
    "action, body",
    [
        ("comment", {"text": "a\u0000b"}),
        ("assign", {"group": "net\u0000work"}),
        ("hold", {"reason": "awaiting_caller", "note": "\u0000"}),
        ("resolve", {"code": "fixed", "notes": "done\u0008"}),
        ("cancel", {"reason": "dup\u001f"}),
        ("recategorise", {"category": "net\u0000"}),
        ("escalate", {"kind": "functional", "group": "l2\u0000"}),
    ],
)
def test_a_command_with_a_control_character_is_422_and_changes_nothing(
    client, auth, container, log_incident, act, action, body
):
    incident = log_incident()
    before = container.desk.stored_events()
    _refused(act(incident["id"], action, body))
    assert container.desk.stored_events() == before
    assert container.desk.get(UUID(incident["id"])).version == incident["version"]


# -- SLA policies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "policy, says",
    [
        ({**POLICY, "targets": {"resolve": {"*": "P999999999D"}}}, "at most 366 days"),
        ({**POLICY, "targets": {"respond": {"P1": "P367D"}}}, "at most 366 days"),
        ({**POLICY, "ola": {"network": {"*": 31708800}}}, "at most 366 days"),
        (
            {
                **POLICY,
                "targets": {"resolve": {"*": "P2D"}},
                "calendar": {"timezone": "UTC", "week": {"mon": [["09:00", "09:01"]]}},
            },
            "would not fall due within 732 days",
        ),
        ({**POLICY, "rank": 2**31}, "rank must be an integer"),
        ({**POLICY, "name": "Mail\u0000"}, "name contains a control character"),
        ({**POLICY, "conditions": {"service": ["mail\u0000"]}}, "contains a control character"),
    ],
)
def test_an_sla_policy_with_a_poison_value_is_422(client, auth, container, policy, says):
    before = container.desk.stored_events()
    response = client.post("/v1/sla/policies", json=policy, headers=auth(Role.MANAGER))
    assert says in _refused(response, EITHER)["detail"]
    assert container.desk.stored_events() == before


def test_editing_a_policy_to_a_poison_value_is_422_and_keeps_its_version(client, auth, container):
    created = client.post("/v1/sla/policies", json=POLICY, headers=auth(Role.MANAGER)).json()
    path = f"/v1/sla/policies/{created['id']}"
    patch = {"targets": {"resolve": {"*": "P999999999D"}}}
    _refused(client.patch(path, json=patch, headers=auth(Role.MANAGER)), EITHER)
    _refused(client.put(path, json={**POLICY, **patch}, headers=auth(Role.MANAGER)), EITHER)
    assert client.get(path, headers=auth(Role.MANAGER)).json()["version"] == 1


def test_an_at_risk_span_beyond_the_longest_duration_is_422(client, auth):
    response = client.get(
        "/v1/sla/at-risk", params={"within": "P999999999D"}, headers=auth(Role.ANALYST)
    )
    assert response.status_code == 422, response.text
    assert "at most 366 days" in response.json()["detail"]


# -- inbound over HTTP -------------------------------------------------------------------------


def _snapshot(id_: str, time: str | None = None, **fields) -> bytes:
    data = snap(0, **fields)
    return cloudevent("incident.snapshot", "servicenow://acme", id_, data["ref"], data, time=time)


@pytest.mark.parametrize(
    "message",
    [
        _snapshot("t-226", time="0226-11-29T10:00:00Z"),
        _snapshot("t-9999", time="9999-12-31T23:59:59Z"),
        _snapshot("month-13", at="2016-13-01T10:00:00"),
        _snapshot("feb-30", at="2016-02-30T10:00:00"),
        _snapshot("hour-25", at="2016-03-01T25:00:00"),
        _snapshot("offset-25", at="2016-03-01T10:00:00+25:00"),
        _snapshot("nul", title="a\u0000b"),
    ],
    ids=["time-0226", "time-9999", "month-13", "feb-30", "hour-25", "offset-25", "title-nul"],
)
def test_an_inbound_message_with_a_poison_value_is_422(client, auth, container, message):
    before = container.desk.stored_events()
    response = client.post(
        "/v1/inbound",
        content=message,
        headers={**auth(Role.INTEGRATION), "content-type": "application/cloudevents+json"},
    )
    _refused(response, "urn:itsm:problem:inbound-invalid-value")
    assert container.desk.stored_events() == before
