"""CloudEvents 1.0 (structured mode, JSON) in, validated against the schemas in schemas/inbound.

`parse(raw)` is the first step of the one inbound code path: bytes in, a `CloudEvent` out,
or a `Rejected` naming why (too large, not JSON, not a CloudEvent, unknown type, data not
matching its type's schema, a time or an integer the domain refuses: a date that does not
exist, a moment outside the supported range; see domain/shared_kernel/value_checks.py).

Validation: the JSON Schemas are the contract and `jsonschema` is the reference validator.
`jsonschema` costs 0.3-0.9 ms per snapshot, more than everything else a message costs, so
each schema is also compiled once into plain Python predicates (`compile_schema`, a strict
subset of draft 2020-12: it refuses at load time any keyword it does not implement). A
message the compiled predicate accepts is valid; one it refuses is run through
`jsonschema` to word the reason. tests/unit/test_inbound_envelope.py checks that both agree.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timezone, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

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


# -- the compiled validator -------------------------------------------------------------------
_ANNOTATIONS = {
    "$schema",
    "$id",
    "$defs",
    "title",
    "description",
    "default",
    "examples",
    "$comment",
}
_TYPE_TESTS = {
    "string": "isinstance({x}, str)",
    "integer": "((isinstance({x}, int) and not isinstance({x}, bool))"
    " or (isinstance({x}, float) and {x}.is_integer()))",
    "number": "(isinstance({x}, (int, float)) and not isinstance({x}, bool))",
    "boolean": "isinstance({x}, bool)",
    "null": "{x} is None",
    "object": "isinstance({x}, dict)",
    "array": "isinstance({x}, list)",
}


def _kind(value: Any) -> tuple[str, Any]:
    """JSON equality: no 1 == true (Python's bool is an int), but 1 == 1.0."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("number", value)
    if isinstance(value, (list, dict)):
        return ("json", orjson.dumps(value, option=orjson.OPT_SORT_KEYS))
    return (type(value).__name__, value)


class _Compiler:
    """Generates one Python function per subschema (as fastjsonschema does)."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root, self.lines, self.names = root, [], {}
        self.namespace: dict[str, Any] = {"_kind": _kind}
        self.refs: dict[str, str] = {}

    def constant(self, value: Any) -> str:
        name = f"_c{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def function(self, schema: dict[str, Any]) -> str:
        name = f"_f{len(self.names)}"
        self.names[name] = schema
        body: list[str] = []
        for keyword, value in schema.items():
            if keyword in _ANNOTATIONS:
                continue
            test = self.keyword(keyword, value, schema)
            if test:
                body.append(f"    if not ({test}): return False")
        self.lines += [f"def {name}(x):", *body, "    return True", ""]
        return name

    def keyword(self, keyword: str, value: Any, schema: dict[str, Any]) -> str | None:
        if keyword == "$ref":
            if not value.startswith("#/$defs/"):
                raise ValueError(f"only local $refs are compiled, not {value!r}")
            if value not in self.refs:
                self.refs[value] = "?"  # recursion guard
                self.refs[value] = self.function(self.root["$defs"][value.removeprefix("#/$defs/")])
            return f"{self.refs[value]}(x)"
        if keyword == "type":
            kinds = [value] if isinstance(value, str) else value
            return " or ".join(_TYPE_TESTS[k].format(x="x") for k in kinds)
        if keyword == "enum":
            kinds = self.constant(frozenset(_kind(v) for v in value))
            plain = [v for v in value if v is not None]
            if all(isinstance(v, str) for v in plain):  # fast path: no str equals a non-str
                return f"(x.__class__ is str or x is None) and x in {self.constant(set(value))}"
            if all(type(v) is int for v in plain):
                return (
                    f"((x.__class__ is int or x is None) and x in "
                    f"{self.constant(set(value))}) or (x.__class__ is float and "
                    f"_kind(x) in {kinds})"
                )
            return f"_kind(x) in {kinds}"
        if keyword == "const":
            return f"_kind(x) == {self.constant(_kind(value))}"
        if keyword == "required":
            names = " and ".join(f"{name!r} in x" for name in value) or "True"
            return f"not isinstance(x, dict) or ({names})"
        if keyword == "properties":
            checks = [
                f"({name!r} not in x or {self.function(sub)}(x[{name!r}]))"
                for name, sub in value.items()
            ]
            return "not isinstance(x, dict) or (" + " and ".join(checks or ["True"]) + ")"
        if keyword == "additionalProperties":
            known = self.constant(frozenset(schema.get("properties", {})))
            if value is True:
                return None
            if value is False:
                return f"not isinstance(x, dict) or x.keys() <= {known}"
            extra = self.function(value)
            return (
                f"not isinstance(x, dict) or all({extra}(v) for k, v in x.items()"
                f" if k not in {known})"
            )
        if keyword == "minLength":
            return f"not isinstance(x, str) or len(x) >= {int(value)}"
        if keyword == "maxLength":
            return f"not isinstance(x, str) or len(x) <= {int(value)}"
        if keyword == "pattern":
            return f"not isinstance(x, str) or {self.constant(re.compile(value).search)}(x)"
        if keyword in ("minimum", "maximum"):
            op = ">=" if keyword == "minimum" else "<="
            number = _TYPE_TESTS["number"].format(x="x")
            return f"not {number} or x {op} {value!r}"
        if keyword == "anyOf":
            return " or ".join(f"{self.function(sub)}(x)" for sub in value)
        raise ValueError(f"the compiled validator does not implement {keyword!r}")


def compile_schema(schema: dict[str, Any]) -> Callable[[Any], bool]:
    """A predicate equivalent to `Draft202012Validator(schema).is_valid` for the keywords
    the inbound schemas use. Raises ValueError on any other keyword, so that nothing is
    silently left unchecked."""
    compiler = _Compiler(schema)
    entry = compiler.function(schema)
    exec(
        compile("\n".join(compiler.lines), f"<schema {schema.get('$id', '')}>", "exec"),
        compiler.namespace,
    )
    return compiler.namespace[entry]


@dataclass(frozen=True)
class Schema:
    name: str
    document: dict[str, Any]
    is_valid: Callable[[Any], bool]
    reference: Draft202012Validator

    def violation(self, instance: Any) -> str | None:
        """None if valid, else why (worded by jsonschema)."""
        if self.is_valid(instance):
            return None
        error = best_match(self.reference.iter_errors(instance))
        if error is None:  # the compiled predicate is stricter than jsonschema: a bug
            raise AssertionError(f"{self.name}: compiled and reference validators disagree")
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return f"{where}: {error.message}"


@lru_cache(maxsize=None)
def schema(name: str) -> Schema:
    document = orjson.loads((SCHEMA_DIR / f"{name}.schema.json").read_bytes())
    Draft202012Validator.check_schema(document)
    return Schema(name, document, compile_schema(document), Draft202012Validator(document))


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
    if len(raw) > max_bytes:
        raise Rejected("too-large", f"the message has {len(raw)} bytes; the limit is {max_bytes}")
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise Rejected("malformed", f"the message is not valid JSON: {error}") from None
    problem = schema("cloudevent").violation(document)
    if problem:
        raise Rejected("not-a-cloudevent", f"not a CloudEvents 1.0 JSON envelope: {problem}")
    kind = document["type"]
    if kind not in TYPES:
        raise Rejected(
            "unknown-type", f"unknown event type {kind!r}; known types: {', '.join(TYPES)}"
        )
    problem = schema(kind).violation(document["data"])
    if problem:
        raise Rejected("invalid-data", f"data of {kind} does not match its schema: {problem}")
    moment = _time(document["time"])
    data = _checked_data(kind, document["data"], source_tz)
    known = {
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
    return CloudEvent(
        id=document["id"],
        source=document["source"],
        type=kind,
        time=moment,
        subject=document["subject"],
        data=data,
        datacontenttype=document.get("datacontenttype"),
        extensions={k: v for k, v in document.items() if k not in known},
    )


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
