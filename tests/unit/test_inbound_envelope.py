"""CloudEvent parsing and the compiled validator, checked against jsonschema."""

from __future__ import annotations

import copy
import json

import orjson
import pytest
from jsonschema import Draft202012Validator

from application.inbound.inbound_message import Rejected
from infra.messaging.cloudevents import SCHEMA_DIR, cloudevent, compile_schema, parse, schema

SNAPSHOT = {
    "ref": "INC0000045",
    "mod_count": 3,
    "updated_at": "2016-02-29T01:16:00",
    "updated_by": "Resolver 12",
    "state": "on_hold",
    "hold_reason": "awaiting_vendor",
    "opened_at": "2016-02-29T01:16:00",
    "opened_by": "Opener 8",
    "caller": "Caller 1",
    "category": "Category 55",
    "subcategory": "Subcategory 170",
    "service": None,
    "impact": 2,
    "urgency": 2,
    "priority": "P3",
    "assignment_group": "Group 56",
    "assignee": None,
    "reopen_count": 0,
    "reassignment_count": 0,
    "resolution_code": None,
    "resolved_by": None,
    "resolved_at": None,
    "closed_at": None,
    "made_sla": True,
    "title": None,
}
ALERT = {
    "service": "mail",
    "check": "smtp",
    "summary": "SMTP down",
    "severity": "critical",
    "impact": 1,
    "urgency": None,
    "labels": {"team": "mail", "n": 1},
}


def event(type_: str = "incident.snapshot", data=None, **overrides) -> dict:
    body = orjson.loads(
        cloudevent(
            type_, "servicenow://acme", "1", "INC0000045", data if data is not None else SNAPSHOT
        )
    )
    body.update(overrides)
    return body


def test_schema_files_are_valid_draft_2020_12_and_documented():
    names = sorted(p.name for p in SCHEMA_DIR.glob("*.json"))
    assert names == [
        "alert.fired.schema.json",
        "alert.resolved.schema.json",
        "cloudevent.schema.json",
        "incident.snapshot.schema.json",
    ]
    for path in SCHEMA_DIR.glob("*.json"):
        document = json.loads(path.read_text())
        Draft202012Validator.check_schema(document)
        assert document["description"]


def test_a_valid_snapshot_parses():
    parsed = parse(orjson.dumps(event()))
    assert parsed.type == "incident.snapshot" and parsed.data["ref"] == "INC0000045"
    assert parsed.causation_id == "ce:servicenow://acme#1" and parsed.time.tzinfo


@pytest.mark.parametrize(
    "raw, kind",
    [
        (b"{nope", "malformed"),
        (b"[]", "not-a-cloudevent"),
        (orjson.dumps(event(specversion="0.3")), "not-a-cloudevent"),
        (orjson.dumps({k: v for k, v in event().items() if k != "id"}), "not-a-cloudevent"),
        (orjson.dumps(event(time="yesterday")), "not-a-cloudevent"),
        (orjson.dumps(event("ticket.deleted")), "unknown-type"),
        (orjson.dumps(event(data={**SNAPSHOT, "state": "Active"})), "invalid-data"),
        (orjson.dumps(event(data={**SNAPSHOT, "impact": "2 - Medium"})), "invalid-data"),
        (
            orjson.dumps(event(data={k: v for k, v in SNAPSHOT.items() if k != "mod_count"})),
            "invalid-data",
        ),
        (orjson.dumps(event("alert.fired", data={"service": "mail"})), "invalid-data"),
    ],
)
def test_what_is_rejected_and_why(raw, kind):
    with pytest.raises(Rejected) as caught:
        parse(raw)
    assert caught.value.kind == kind and caught.value.reason


def test_over_one_mebibyte_is_too_large_before_parsing():
    raw = orjson.dumps(event(data={**SNAPSHOT, "title": "x" * (1024 * 1024)}))
    with pytest.raises(Rejected) as caught:
        parse(raw)
    assert caught.value.kind == "too-large" and caught.value.status == 413


def _mutations(document: dict):
    """Valid and invalid variants: each field replaced by values of every JSON kind."""
    probes = [
        None,
        True,
        False,
        0,
        1,
        2,
        3,
        4,
        -1,
        2.0,
        2.5,
        "",
        "x",
        "new",
        "P3",
        "2016-02-29T01:16:00",
        "2016-02-29T01:16:00+01:00",
        "29/2/2016 01:16",
        [],
        {},
    ]
    for key in document:
        for probe in probes:
            variant = copy.deepcopy(document)
            variant[key] = probe
            yield variant
        variant = copy.deepcopy(document)
        del variant[key]
        yield variant
    yield {**document, "unknown": 1}
    yield []


@pytest.mark.parametrize(
    "name, sample",
    [
        ("incident.snapshot", SNAPSHOT),
        ("alert.fired", ALERT),
        ("alert.resolved", {"service": "mail", "check": "smtp", "auto_resolve": True}),
        ("cloudevent", event()),
    ],
)
def test_the_compiled_validator_agrees_with_jsonschema(name, sample):
    compiled, reference = schema(name).is_valid, schema(name).reference
    checked = 0
    for variant in _mutations(sample):
        assert compiled(variant) == reference.is_valid(variant), variant
        checked += 1
    assert checked >= 21 * len(sample)


def test_the_compiler_refuses_keywords_it_does_not_implement():
    with pytest.raises(ValueError, match="oneOf"):
        compile_schema({"oneOf": [{"type": "string"}]})
