"""The OpenAPI body of POST /v1/inbound: one of the CloudEvent types, from schemas/inbound/.

The envelope (cloudevent.schema.json) with `type` fixed and `data` the type's own schema,
its local `$defs` inlined (a `#/$defs/...` reference would point into the OpenAPI document).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "inbound"
TYPES = ("alert.fired", "alert.resolved", "incident.snapshot")
_DROPPED = ("$schema", "$id", "$defs")


def _load(name: str) -> dict[str, Any]:
    path = SCHEMA_DIR / f"{name}.schema.json"
    loaded: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    return loaded


def _inlined(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_inlined(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref", "")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _inlined(defs[ref.removeprefix("#/$defs/")], defs)
    return {key: _inlined(value, defs) for key, value in node.items() if key not in _DROPPED}


def _variant(envelope: dict[str, Any], kind: str) -> dict[str, Any]:
    data = _load(kind)
    properties = {
        **envelope.get("properties", {}),
        "type": {"const": kind},
        "data": _inlined(data, data.get("$defs", {})) or {"type": "object"},
    }
    return {**_inlined(envelope, {}), "title": f"{kind} CloudEvent", "properties": properties}


def cloudevent_schema() -> dict[str, Any]:
    envelope = _load("cloudevent")
    if not envelope:
        return {"type": "object"}
    return {"oneOf": [_variant(envelope, kind) for kind in TYPES]}


EXAMPLE = {
    "specversion": "1.0",
    "id": "alert-1",
    "source": "prometheus://alertmanager-1",
    "type": "alert.fired",
    "time": "2026-03-01T09:30:00Z",
    "subject": "email/smtp-up",
    "datacontenttype": "application/json",
    "data": {"service": "email", "check": "smtp-up", "summary": "SMTP down", "severity": "major"},
}
