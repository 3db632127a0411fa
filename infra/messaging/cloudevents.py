"""CloudEvents 1.0 (structured mode, JSON) in, validated against the schemas in schemas/inbound.

`parse(raw)` is the first step of the one inbound code path: bytes in, a `CloudEvent` out,
or a `Rejected` naming why (too large, not JSON, not a CloudEvent, unknown type, data not
matching its type's schema, a time or an integer the domain refuses: a date that does not
exist, a moment outside the supported range; see domain/shared_kernel/value_checks.py).

Validation: the JSON Schemas are the contract; `fastjsonschema` compiles each one once into
Python code, far cheaper per message than `jsonschema` (which the tests keep as the
reference). It implements draft-07 and silently skips keywords it does not
know, so the schemas declare draft-07 and `schema()` refuses any other keyword at load time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timezone, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any

import fastjsonschema
import orjson
from fastjsonschema import JsonSchemaValueException

from application.inbound.inbound_message import MAX_BYTES, CloudEvent, Rejected
from domain.shared_kernel.errors import InvalidValue
from domain.shared_kernel.value_checks import check_integer, parse_time

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "inbound"
TYPES = ("alert.fired", "alert.resolved", "incident.snapshot")
# The fields of each type's data that are read as times or as integers: the schemas' time
# and integer properties (tests/unit/test_value_checks.py keeps them in step).
TIME_FIELDS = {"incident.snapshot": ("updated_at", "opened_at", "resolved_at", "closed_at")}
INTEGER_FIELDS = {
    "alert.fired": ("impact", "urgency"),
    "incident.snapshot": ("mod_count", "impact", "urgency", "reopen_count", "reassignment_count"),
}
ATTRIBUTES = {
    "specversion",
    "id",
    "source",
    "type",
    "time",
    "subject",
    "data",
    "datacontenttype",
    "dataschema",
}

# -- schemas -----------------------------------------------------------------------------------
DRAFT = "http://json-schema.org/draft-07/schema#"
# Draft-07 as fastjsonschema implements it (contentEncoding and contentMediaType left out:
# it asserts them where draft-07 only annotates). `$defs` is draft 2019's name for
# `definitions`; a `$ref` reaches either by its JSON pointer.
KEYWORDS = frozenset(
    {
        *("$schema", "$id", "$comment", "title", "description", "examples", "default"),
        *("readOnly", "writeOnly", "definitions", "$defs", "$ref"),
        *("type", "enum", "const", "format", "allOf", "anyOf", "oneOf", "not"),
        *("if", "then", "else", "multipleOf", "minimum", "maximum"),
        *("exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern"),
        *("items", "additionalItems", "minItems", "maxItems", "uniqueItems", "contains"),
        *("required", "properties", "patternProperties", "additionalProperties"),
        *("dependencies", "propertyNames", "minProperties", "maxProperties"),
    }
)
# Keywords whose value is a subschema, a list of them or (these first) a map of them.
_SCHEMA_MAPS = frozenset(
    {"$defs", "definitions", "properties", "patternProperties", "dependencies"}
)
_SCHEMA_VALUED = _SCHEMA_MAPS | {
    *("items", "additionalItems", "additionalProperties", "contains", "propertyNames"),
    *("allOf", "anyOf", "oneOf", "not", "if", "then", "else"),
}
_LOCAL_REFS = ("#/$defs/", "#/definitions/")
# Rules whose message already names the offending keys: the value is the whole object.
_OBJECT_RULES = frozenset({"required", "additionalProperties", "dependencies"})


def _walk(schema: Any) -> Iterator[dict[str, Any]]:
    """`schema` and its subschemas, depth first (boolean schemas left out)."""
    if isinstance(schema, dict):
        yield schema
        for keyword in schema.keys() & _SCHEMA_VALUED:
            for sub in _subschemas(keyword, schema[keyword]):
                yield from _walk(sub)


def _subschemas(keyword: str, value: Any) -> list[Any]:
    if keyword in _SCHEMA_MAPS:
        return list(value.values()) if isinstance(value, dict) else []
    return value if isinstance(value, list) else [value]


def check_supported(document: dict[str, Any], name: str = "schema") -> None:
    """Raises ValueError unless `document` declares draft-07, uses only the keywords
    fastjsonschema implements (it would skip any other, leaving it unchecked) and refers
    only to its own definitions (fastjsonschema would fetch any other URI)."""
    if document.get("$schema") != DRAFT:
        raise ValueError(
            f"{name}: $schema is {document.get('$schema')!r}; fastjsonschema implements {DRAFT}"
        )
    unknown = set().union(*_walk(document)) - KEYWORDS
    if unknown:
        raise ValueError(f"{name}: fastjsonschema does not implement {sorted(unknown)}")
    refs = {sub["$ref"] for sub in _walk(document) if "$ref" in sub}
    if any(not str(ref).startswith(_LOCAL_REFS) for ref in refs):
        raise ValueError(f"{name}: a $ref must start with one of {_LOCAL_REFS}, not {refs}")


def compile_schema(document: dict[str, Any], name: str = "schema") -> Callable[..., Any]:
    """The validator of a checked schema: returns the instance, or raises
    JsonSchemaValueException at its first violation. Never fills in defaults."""
    check_supported(document, name)
    return fastjsonschema.compile(document, use_default=False)


@lru_cache(maxsize=256)
def _alternative(document: bytes) -> Callable[..., Any]:
    return fastjsonschema.compile(orjson.loads(document), use_default=False)


@dataclass(frozen=True)
class Schema:
    name: str
    document: dict[str, Any]
    validate: Callable[..., Any]

    def violation(self, instance: Any) -> str | None:
        """None if valid, else where and why: `<path>: <rule broken> (got <value>)`."""
        try:
            self.validate(instance)
        except JsonSchemaValueException as error:
            return f"{_where(error)}: {self._why(error)}"
        return None

    def _why(self, error: JsonSchemaValueException, with_value: bool = True) -> str:
        if error.rule == "anyOf":  # fastjsonschema says only "cannot be validated by any"
            why = "matches none of: " + " | ".join(self._refusals(error))
        else:
            why = error.message.removeprefix(error.name or "").lstrip()
        if not with_value or error.rule in _OBJECT_RULES:
            return why
        return f"{why} (got {_short(error.value)})"

    def _refusals(self, error: JsonSchemaValueException) -> list[str]:
        """Why each alternative of a failed anyOf refuses the value."""
        return [self._refusal(error, sub) for sub in error.rule_definition if sub is not False]

    def _refusal(self, error: JsonSchemaValueException, sub: Any) -> str:
        """Why one alternative refuses; compiled on first use, with the definitions its
        `$ref`s may reach."""
        scope = {k: v for k, v in self.document.items() if k in ("$defs", "definitions")}
        document = {**scope, **(sub if isinstance(sub, dict) else {}), "$schema": DRAFT}
        try:
            _alternative(orjson.dumps(document))(error.value, name_prefix=error.name)
        except JsonSchemaValueException as refusal:
            if refusal.name == error.name:
                return self._why(refusal, with_value=False)
            return f"{_where(refusal)}: {self._why(refusal)}"
        raise AssertionError(f"{self.name}: an alternative accepts what anyOf refused")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"


def _where(error: JsonSchemaValueException) -> str:
    """The path from the validated document (fastjsonschema names its root `data`)."""
    return "/".join(error.path[1:]) or "(root)"


@lru_cache(maxsize=None)
def schema(name: str) -> Schema:
    document = orjson.loads((SCHEMA_DIR / f"{name}.schema.json").read_bytes())
    return Schema(name, document, compile_schema(document, name))


def _checked_data(kind: str, data: dict[str, Any], source_tz: tzinfo) -> dict[str, Any]:
    """The data with its times checked and its integers as int (JSON Schema counts 2.0 as
    an integer; the domain does not), or Rejected."""
    try:
        for name in TIME_FIELDS.get(kind, ()):
            if data.get(name) is not None:
                parse_time(data[name], source_tz, f"data/{name}")
        integers = {
            name: check_integer(f"data/{name}", int(data[name]))
            for name in INTEGER_FIELDS.get(kind, ())
            if data.get(name) is not None
        }
    except InvalidValue as error:
        raise Rejected("invalid-value", str(error)) from None
    return {**data, **integers}


def _time(text: str) -> datetime:
    try:
        return parse_time(text, UTC, "time")
    except InvalidValue as error:
        raise Rejected("invalid-value", str(error)) from None


def parse(raw: bytes, max_bytes: int = MAX_BYTES, source_tz: tzinfo = UTC) -> CloudEvent:
    """Bytes -> a validated CloudEvent, or Rejected. Times in the data without an offset
    are in `source_tz`."""
    document = _envelope(raw, max_bytes)
    kind = document["type"]
    problem = schema(kind).violation(document["data"])
    if problem:
        raise Rejected("invalid-data", f"data of {kind} does not match its schema: {problem}")
    return CloudEvent(
        id=document["id"],
        source=document["source"],
        type=kind,
        time=_time(document["time"]),
        subject=document["subject"],
        data=_checked_data(kind, document["data"], source_tz),
        datacontenttype=document.get("datacontenttype"),
        extensions={k: v for k, v in document.items() if k not in ATTRIBUTES},
    )


def _envelope(raw: bytes, max_bytes: int) -> dict[str, Any]:
    """The decoded envelope, of a known type, or Rejected."""
    document = _json(raw, max_bytes)
    problem = schema("cloudevent").violation(document)
    if problem:
        raise Rejected("not-a-cloudevent", f"not a CloudEvents 1.0 JSON envelope: {problem}")
    envelope: dict[str, Any] = document  # a JSON object: the schema says so
    if envelope["type"] not in TYPES:
        known = ", ".join(TYPES)
        raise Rejected(
            "unknown-type", f"unknown event type {envelope['type']!r}; known types: {known}"
        )
    return envelope


def _json(raw: bytes, max_bytes: int) -> Any:
    if len(raw) > max_bytes:
        raise Rejected("too-large", f"the message has {len(raw)} bytes; the limit is {max_bytes}")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise Rejected("malformed", f"the message is not valid JSON: {error}") from None


def cloudevent(
    type: str,
    source: str,
    id: str,
    subject: str,
    data: dict[str, Any],
    time: datetime | str | None = None,
) -> bytes:
    """A structured-mode CloudEvent as a sender would send it (tests, importers, tools)."""
    moment = time or datetime.now(timezone.utc)
    return orjson.dumps(
        {
            "specversion": "1.0",
            "id": id,
            "source": source,
            "type": type,
            "time": moment if isinstance(moment, str) else moment.isoformat(),
            "subject": subject,
            "datacontenttype": "application/json",
            "data": data,
        }
    )


def partition_key(type: str, data: dict[str, Any]) -> bytes:
    """The Kafka key that keeps one ticket's (or one fingerprint's) messages in order."""
    if type == "incident.snapshot":
        return str(data["ref"]).encode()
    return f"{data['service']}/{data['check']}".encode()
