"""Inbound events (issue 4): CloudEvents from monitoring and other ticketing tools.

- `envelope`: bytes -> validated CloudEvent (schemas in schemas/inbound/)
- `snapshots`: incident.snapshot -> incident events (the mapping rules, docs/inbound.md)
- `alerts`: alert.fired / alert.resolved -> one incident per open fingerprint
- `apply`: `InboundProcessor`, the one code path of HTTP and Kafka
- `consumer`: `itsm inbound`, the Kafka consumer of itsm.inbound
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import orjson


def cloudevent(type: str, source: str, id: str, subject: str, data: dict[str, Any],
               time: datetime | str | None = None) -> bytes:
    """A structured-mode CloudEvent as a sender would send it (tests, importers, tools)."""
    moment = time or datetime.now(timezone.utc)
    return orjson.dumps({
        "specversion": "1.0", "id": id, "source": source, "type": type,
        "time": moment if isinstance(moment, str) else moment.isoformat(),
        "subject": subject, "datacontenttype": "application/json", "data": data})


def partition_key(type: str, data: dict[str, Any]) -> bytes:
    """The Kafka key that keeps one ticket's (or one fingerprint's) messages in order."""
    if type == "incident.snapshot":
        return str(data["ref"]).encode()
    return f"{data['service']}/{data['check']}".encode()
