"""CloudEvent parsing and the fastjsonschema validators, checked against jsonschema."""

from __future__ import annotations

import copy
import json

import orjson
import pytest
from fastjsonschema.draft07 import CodeGeneratorDraft07
from jsonschema import Draft7Validator

from application.inbound.inbound_message import Rejected
from infra.messaging.cloudevents import (
    DRAFT,
    KEYWORDS,
    SCHEMA_DIR,
    check_supported,
    cloudevent,
    parse,
    schema,
)

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


def test_schema_files_are_valid_draft_07_and_documented():
    names = sorted(p.name for p in SCHEMA_DIR.glob("*.json"))
    assert names == [
        "alert.fired.schema.json",
        "alert.resolved.schema.json",
        "cloudevent.schema.json",
        "incident.snapshot.schema.json",
    ]
    for path in SCHEMA_DIR.glob("*.json"):
        document = json.loads(path.read_text())
        assert document["$schema"] == DRAFT
        Draft7Validator.check_schema(document)
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
def test_the_validator_agrees_with_jsonschema(name, sample):
    checked, reference = schema(name), Draft7Validator(schema(name).document)
    count = 0
    for variant in _mutations(sample):
        assert (checked.violation(variant) is None) == reference.is_valid(variant), variant
        count += 1
    assert count >= 21 * len(sample)


@pytest.mark.parametrize(
    "data, reason",
    [
        (
            {**SNAPSHOT, "state": "Active"},
            "state: must be one of ['new', 'in_progress', 'on_hold', 'resolved', 'closed',"
            " 'cancelled'] (got 'Active')",
        ),
        (
            {**SNAPSHOT, "impact": "2 - Medium"},
            "impact: must be one of [1, 2, 3, None] (got '2 - Medium')",
        ),
        ({**SNAPSHOT, "mod_count": True}, "mod_count: must be integer (got True)"),
        ({**SNAPSHOT, "mod_count": -1}, "mod_count: must be bigger than or equal to 0 (got -1)"),
        (
            {k: v for k, v in SNAPSHOT.items() if k != "mod_count"},
            "(root): must contain ['mod_count'] properties",
        ),
        (
            {**SNAPSHOT, "opened_at": 5},
            "opened_at: matches none of: must be string | must be null (got 5)",
        ),
        (
            {**SNAPSHOT, "closed_at": "29/2/2016 01:16"},
            "closed_at: matches none of: must match pattern ^\\d{4}-",
        ),
        (
            {**SNAPSHOT, "title": "x" * 600},
            "title: must be shorter than or equal to 500 characters (got 'xxx",
        ),
    ],
)
def test_a_rejection_names_the_field_and_the_rule_it_breaks(data, reason):
    with pytest.raises(Rejected) as caught:
        parse(orjson.dumps(event(data=data)))
    prefix = "data of incident.snapshot does not match its schema: "
    assert caught.value.reason.startswith(prefix + reason), caught.value.reason


def test_a_long_value_is_cut_short_in_the_reason():
    problem = schema("incident.snapshot").violation({**SNAPSHOT, "title": "x" * 100_000})
    assert problem.endswith("... (100002 characters))") and len(problem) < 200


def test_nested_fields_are_named_by_their_path():
    labels = {**ALERT, "labels": {"team": ["mail"]}}
    problem = schema("alert.fired").violation(labels)
    assert problem == "labels/team: must be string or number or boolean or null (got ['mail'])"


def test_an_envelope_rejection_names_the_missing_attributes():
    with pytest.raises(Rejected) as caught:
        parse(orjson.dumps({"specversion": "1.0", "id": "x"}))
    assert caught.value.reason == (
        "not a CloudEvents 1.0 JSON envelope: (root): must contain"
        " ['data', 'source', 'subject', 'time', 'type'] properties"
    )


@pytest.mark.parametrize(
    "document, refused",
    [
        ({"$schema": "https://json-schema.org/draft/2020-12/schema"}, "2020-12"),
        ({"$schema": DRAFT, "prefixItems": [{"type": "string"}]}, "prefixItems"),
        ({"$schema": DRAFT, "properties": {"a": {"unevaluatedProperties": False}}}, "unevaluated"),
        ({"$schema": DRAFT, "anyOf": [{"dependentRequired": {"a": ["b"]}}]}, "dependentRequired"),
        ({"$schema": DRAFT, "$ref": "https://example.com/schema.json"}, "example.com"),
    ],
)
def test_a_schema_fastjsonschema_would_not_fully_check_is_refused_at_load(document, refused):
    with pytest.raises(ValueError, match=refused):
        check_supported(document)


def test_a_property_named_like_a_keyword_is_not_a_keyword():
    check_supported({"$schema": DRAFT, "properties": {"prefixItems": {"type": "string"}}})


def test_every_keyword_allowed_is_one_fastjsonschema_implements():
    generated = set(CodeGeneratorDraft07({})._json_keywords_to_function)
    # $ref, then, else and additionalItems are read by the generator of another keyword.
    implemented = generated | {"$ref", "then", "else", "additionalItems"}
    annotations = {"$schema", "$id", "$comment", "title", "description", "examples", "default"}
    annotations |= {"readOnly", "writeOnly", "definitions", "$defs"}
    assert KEYWORDS - annotations <= implemented
