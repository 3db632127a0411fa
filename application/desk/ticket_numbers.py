"""Where a new ticket's number comes from.

The adapter is infra/event_store/ticket_numbers.py, a database sequence."""

from __future__ import annotations

from typing import Protocol


class TicketNumbers(Protocol):
    def next(self) -> str:
        """The next number, e.g. INC0001001."""
        ...
