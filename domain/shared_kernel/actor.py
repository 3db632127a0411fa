"""Who acted: a person, an automation or an upstream system."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ActorKind(StrEnum):
    PERSON = "person"
    AUTOMATION = "automation"
    UPSTREAM = "upstream"


@dataclass(frozen=True)
class Actor:
    """Who acted: auditors ask for this on every event."""

    id: str
    kind: ActorKind = ActorKind.PERSON

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "kind": str(self.kind)}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> Actor:
        return cls(id=data["id"], kind=ActorKind(data["kind"]))
