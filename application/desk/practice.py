"""A practice as the write path sees it: what it declares to plug in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from domain.shared_kernel.personal_data import PersonalData


@dataclass(frozen=True)
class Practice:
    """`aggregates` are the types the practice owns; `number_prefix` numbers its tickets
    (None: not numbered); `clock_events` are recorded by automation and never make a
    caller's If-Match stale; `snapshots` says whether its aggregates grow long enough
    to be worth snapshotting; `personal_data`, per aggregate type, which fields of its events
    are a person's (encrypted per data subject as they are recorded)."""

    name: str
    aggregates: tuple[type, ...]
    noun: str = ""  # how messages name one of its aggregates; the name by default
    number_prefix: str | None = None
    clock_events: frozenset[str] = frozenset()
    snapshots: bool = False
    personal_data: Mapping[type, PersonalData] = field(default_factory=dict)

    def label(self, aggregate: object) -> str:
        number = getattr(aggregate, "number", None) or getattr(aggregate, "id", "")
        return f"{self.noun or self.name} {number}"
