"""Retention of personal data: a person whose tickets have all been closed (or cancelled)
for longer than the retention period is erased, by the `retention` automation, on the
legal basis that their data are no longer necessary (docs/privacy.md)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from application.privacy.erasure import Erasures
from domain.shared_kernel.actor import Actor, ActorKind
from domain.shared_kernel.command_context import Context

ENDED = {"closed": "closed_at", "cancelled": "cancelled_at"}
Held = Callable[[], dict[str, list[str]]]  # subject -> its tickets' ids
Tickets = Callable[[set[str]], dict[str, dict[str, Any]]]  # id -> the ticket's record


class Retention:
    def __init__(
        self,
        erasures: Erasures,
        held: Held,
        tickets: Tickets,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.erasures, self.held, self.tickets, self.clock = erasures, held, tickets, clock

    def run_pass(self, days: int) -> list[str]:
        """Erase every subject due; returns their pseudonyms (each erasure is recorded)."""
        limit = self.clock() - timedelta(days=days)
        due = [s for s, ids in self.held().items() if self._ended_before(set(ids), limit)]
        ctx = Context(Actor("retention", ActorKind.AUTOMATION), f"retention-{days}d")
        reason = f"retention: every ticket ended more than {days} days ago"
        for subject in due:
            self.erasures.erase_subject(subject, reason, "retention", ctx)
        return due

    def _ended_before(self, ids: set[str], limit: datetime) -> bool:
        """All the subject's tickets known and ended, the last of them before `limit` (a
        ticket the read model has not reached yet counts as open)."""
        records = self.tickets(ids)
        if len(records) < len(ids):
            return False
        ends = [_ended(r) for r in records.values()]
        return all(e is not None and e < limit for e in ends)


def _ended(record: dict[str, Any]) -> datetime | None:
    column = ENDED.get(str(record.get("state")))
    value = record.get(column) if column else None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
