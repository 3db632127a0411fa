"""The published form of one stored event: what Kafka carries and every projection reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson


@dataclass(frozen=True)
class Envelope:
    event_id: str
    type: str  # "Incident.Assigned"
    aggregate_id: str
    aggregate_version: int
    schema_version: int
    occurred_at: datetime
    actor: dict[str, str]  # {"id": ..., "kind": person | automation | upstream}
    causation_id: str
    payload: dict[str, Any]
    notification_id: int = 0
    # occurred_at is when it happened (at the source, for imported events); recorded_at is
    # when this store recorded it. They differ only for events that came from elsewhere.
    recorded_at: datetime | None = None

    @property
    def aggregate_type(self) -> str:
        return self.type.partition(".")[0]

    @property
    def name(self) -> str:
        """The event's own name, e.g. "Assigned"."""
        return self.type.partition(".")[2]

    def to_json(self) -> bytes:
        return orjson.dumps(self.__dict__)

    @classmethod
    def from_json(cls, data: bytes) -> Envelope:
        fields = orjson.loads(data)
        fields["occurred_at"] = datetime.fromisoformat(fields["occurred_at"])
        if fields.get("recorded_at"):
            fields["recorded_at"] = datetime.fromisoformat(fields["recorded_at"])
        return cls(**fields)
