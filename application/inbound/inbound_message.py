"""An inbound message as the application sees it, and what became of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

MAX_BYTES = 1024 * 1024


class Rejected(Exception):
    """The message cannot be applied; `kind` maps to an HTTP status and a DLQ reason."""

    STATUS = {
        "too-large": 413,
        "malformed": 400,
        "not-a-cloudevent": 422,
        "unknown-type": 422,
        "invalid-data": 422,
        "invalid-value": 422,
        "illegal-transition": 409,
    }

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind, self.reason = kind, reason

    @property
    def status(self) -> int:
        return self.STATUS.get(self.kind, 422)

    def __str__(self) -> str:
        return f"{self.kind}: {self.reason}"


@dataclass(frozen=True)
class CloudEvent:
    id: str
    source: str
    type: str
    time: datetime
    subject: str
    data: dict[str, Any]
    datacontenttype: str | None = None
    extensions: dict[str, Any] = field(default_factory=dict)

    @property
    def causation_id(self) -> str:
        """What the domain events record as their cause: the sender and its message id."""
        return f"ce:{self.source}#{self.id}"


@dataclass(frozen=True)
class Outcome:
    status: str  # applied | duplicate | rejected
    reason: str | None = None  # why it was rejected
    kind: str | None = None  # rejection kind: too-large, malformed, invalid-data, ...
    effect: str | None = None  # what applying did: opened, applied, stale, attached, ...
    incident_id: str | None = None
    source: str | None = None
    event_id: str | None = None
    type: str | None = None

    @property
    def http_status(self) -> int:
        if self.status == "rejected":
            return Rejected.STATUS.get(self.kind or "", 422)
        return 200

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}
