"""Each practice's ticket number sequence, held by one unit of work at a time.

A unit of work that creates a numbered ticket holds its practice's sequence from the first
number it takes to its commit; the next one starts from the sequence as saved. Another
process taking numbers meanwhile makes the commit fail on the sequence's version, and the
write is run again on fresh state (application/desk/service_desk.py, `retrying`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from copy import deepcopy
from typing import Protocol

from domain.shared_kernel.ticket_number_sequence import TicketNumberSequence, sequence_id

FIRST = 1001


class FirstNumbers(Protocol):
    def __call__(self, practice: str) -> int:
        """Where a practice's new sequence starts: after the numbers the store already gave."""
        ...


def first_number(practice: str) -> int:
    return FIRST


class Sequences:
    def __init__(
        self,
        load: Callable[[object], TicketNumberSequence | None],
        first: FirstNumbers = first_number,
    ) -> None:
        self._load, self._first = load, first
        self._locks: dict[str, threading.Lock] = {}
        self._saved: dict[str, TicketNumberSequence] = {}
        self._guard = threading.Lock()

    def hold(self, practice: str) -> TicketNumberSequence:
        """The practice's sequence, as saved last; released with `release`."""
        self._lock(practice).acquire()
        try:
            return deepcopy(self._saved.get(practice)) or self._fresh(practice)
        except BaseException:
            self._lock(practice).release()
            raise

    def release(self, practice: str, saved: TicketNumberSequence | None) -> None:
        """`saved`: the sequence as committed; None when the commit failed or is unknown."""
        if saved is None:
            self._saved.pop(practice, None)
        else:
            self._saved[practice] = saved
        self._lock(practice).release()

    def _fresh(self, practice: str) -> TicketNumberSequence:
        stored = self._load(sequence_id(practice))
        if stored is not None:
            return stored
        return TicketNumberSequence(practice=practice, first=self._first(practice))

    def _lock(self, practice: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(practice, threading.Lock())
