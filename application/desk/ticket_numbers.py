"""Each practice's ticket number sequence, held by one unit of work at a time.

A unit of work that creates a numbered ticket holds its practice's sequence from the first
number it takes to its commit. It starts from the sequence as stored (the repository's
cache reads only the events since its copy), so numbers another process took are seen.
Another process taking numbers between the read and the commit makes the commit fail on
the sequence's version, and the write is run again (application/desk/service_desk.py,
`retrying`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
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
        self._guard = threading.Lock()

    def hold(self, practice: str) -> TicketNumberSequence:
        """The practice's sequence as stored; released with `release`."""
        self._lock(practice).acquire()
        try:
            return self._fresh(practice)
        except BaseException:
            self._lock(practice).release()
            raise

    def release(self, practice: str) -> None:
        self._lock(practice).release()

    def _fresh(self, practice: str) -> TicketNumberSequence:
        stored = self._load(sequence_id(practice))
        if stored is not None:
            return stored
        return TicketNumberSequence(practice=practice, first=self._first(practice))

    def _lock(self, practice: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(practice, threading.Lock())
