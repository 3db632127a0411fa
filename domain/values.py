"""Value objects shared by the aggregates."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class DomainError(Exception):
    """A command broke a business rule; nothing was recorded."""


class IllegalTransition(DomainError):
    """The command does not apply to the ticket in its current state."""


class InvalidValue(DomainError):
    """A value is outside what the domain allows."""


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


class State(StrEnum):
    NEW = "new"
    IN_PROGRESS = "in_progress"
    ON_HOLD = "on_hold"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"


OPEN_STATES = frozenset({State.NEW, State.IN_PROGRESS, State.ON_HOLD})


class Channel(StrEnum):
    PHONE = "phone"
    EMAIL = "email"
    PORTAL = "portal"
    MONITORING = "monitoring"


class HoldReason(StrEnum):
    AWAITING_CALLER = "awaiting_caller"
    AWAITING_VENDOR = "awaiting_vendor"
    AWAITING_PROBLEM = "awaiting_problem"
    AWAITING_CHANGE = "awaiting_change"
    AWAITING_EVIDENCE = "awaiting_evidence"  # imported tickets (ServiceNow "Awaiting Evidence")


class EscalationKind(StrEnum):
    FUNCTIONAL = "functional"
    HIERARCHICAL = "hierarchical"


TIERS = ("L1", "L2", "L3")


def parse_choice(kind: type[StrEnum], name: str, value: str) -> str:
    """The enum's value as plain text, or InvalidValue naming the allowed ones."""
    try:
        return str(kind(value))
    except ValueError:
        allowed = ", ".join(str(member) for member in kind)
        raise InvalidValue(f"{name} must be one of {allowed}, not {value!r}") from None


def check_level(name: str, value: int) -> int:
    # 2.0 equals 2 but cannot index the priority matrix.
    if isinstance(value, bool) or not isinstance(value, int) or value not in (1, 2, 3):
        raise InvalidValue(f"{name} must be 1 (high), 2 (medium) or 3 (low), not {value!r}")
    return value


@dataclass(frozen=True)
class PriorityMatrix:
    """Impact x urgency -> priority. Rows are impact 1..3, columns urgency 1..3."""

    rows: tuple[tuple[str, str, str], ...] = (
        ("P1", "P2", "P3"),
        ("P2", "P3", "P4"),
        ("P3", "P4", "P4"),
    )

    def __post_init__(self) -> None:
        cells = {cell for row in self.rows for cell in row}
        if [len(row) for row in self.rows] != [3, 3, 3] or not cells <= {"P1", "P2", "P3", "P4"}:
            raise InvalidValue("a priority matrix is 3x3 cells of P1..P4")

    def priority(self, impact: int, urgency: int) -> str:
        return self.rows[check_level("impact", impact) - 1][check_level("urgency", urgency) - 1]

    @classmethod
    def parse(cls, text: str) -> PriorityMatrix:
        """Parse 'P1,P2,P3;P2,P3,P4;P3,P4,P4' (rows = impact 1..3)."""
        rows = tuple(tuple(c.strip() for c in row.split(",")) for row in text.split(";"))
        if any(len(row) != 3 for row in rows):
            raise InvalidValue("a priority matrix is three rows of three cells")
        return cls(rows=rows)  # type: ignore[arg-type]
