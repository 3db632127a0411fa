"""Review reminders: an event on the improvement when its review date passes unverified.

An improvement's review date is when the last of its goals' review periods ends (the
register read model's `review_date`): from then on every figure can be verified. When that
date has passed, the improvement is neither closed nor declined, and no verification was
recorded at or after it, the scheduler records `Improvement.ReviewReminded` (the review
date, the goals whose review period ended) by Actor("review-reminders", automation), with
the causation id `review-reminders:<the pass's time>`. It is in the event store, on Kafka
and in the audit timeline like any other event.

One write path: the scheduler builds a `RemindReview` command and saves it through the
ServiceDesk, as HTTP does. It finds candidates in the register read model
(`rm_improvements`: the `review_date` column and the folded record, which shows the last
reminder and the latest verification) once per poll; the poll is coarse (a minute by
default), since review dates are days apart.

At most once per review date: the improvement refuses a second reminder of the same date
(IllegalTransition, nothing recorded), as it refuses one when a verification was recorded
after the review date or the date has not come yet. A refusal is not an error of the pass:
the read model may simply be behind the store (a reminder or verification it has not
folded yet), or a second scheduler got there first. A revised goal that moves the review
date later makes the new date due in its turn.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson

from application.desk.errors import VersionConflict
from application.desk.service_desk import ServiceDesk
from domain.improvement.commands import RemindReview
from domain.shared_kernel.actor import Actor, ActorKind
from domain.shared_kernel.command_context import Context
from domain.shared_kernel.errors import DomainError
from projections.runtime.read_store import ReadStore
from projections.runtime.time_text import iso

REMINDER = Actor("review-reminders", ActorKind.AUTOMATION)
# Improvements whose review date has passed, not closed or declined. Times in the register
# are fixed-width UTC text, so text order is time order.
_DUE = (
    "SELECT id, review_date, record FROM rm_improvements"
    " WHERE review_date IS NOT NULL AND review_date <= %s"
    " AND state NOT IN ('closed', 'declined') ORDER BY review_date, id"
)
log = logging.getLogger(__name__)


@dataclass
class ReminderPass:
    """What one pass did: the improvements reminded, and those the domain refused (id:
    why), which are not errors."""

    causation_id: str
    reminded: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)


def is_due(review_date: str, record: dict[str, Any]) -> bool:
    """Whether the register's record still calls for a reminder of `review_date`: not
    reminded of that date yet, and no verification recorded at or after it."""
    if record.get("review_reminded_for") == review_date:
        return False
    verification = record.get("verification")
    return not (verification and str(verification.get("at", "")) >= review_date)


class ReviewReminders:
    """The scheduler: `run_pass` is one look and its reminders; `start`/`stop` run passes
    every `poll_interval` seconds on a thread, `run` on the caller's."""

    def __init__(
        self,
        read_db: ReadStore,
        desk: ServiceDesk,
        poll_interval: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.read_db, self.desk = read_db, desk
        self.poll_interval, self.clock = poll_interval, clock
        # (improvement id, review date) reminded or refused: not asked again while the read
        # model has not folded the outcome yet. A new review date is a new key.
        self._done: set[tuple[str, str]] = set()
        self.reminded = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one pass ------------------------------------------------------------------------

    def due(self, now: datetime) -> list[tuple[str, str]]:
        """(improvement id, review date) of every improvement due a reminder at `now`, as
        the register read model has it."""
        with self.read_db.transaction(read_only=True) as tx:
            rows = tx.execute(_DUE, (iso(now),)).fetchall()
        return [
            (str(ident), str(review_date))
            for ident, review_date, record in rows
            if (str(ident), str(review_date)) not in self._done
            and is_due(str(review_date), orjson.loads(record))
        ]

    def run_pass(self) -> ReminderPass:
        """Remind every improvement whose review date has passed without a verification."""
        now = datetime.fromtimestamp(self.clock(), UTC)
        done = ReminderPass(causation_id=f"review-reminders:{iso(now)}")
        ctx = Context(by=REMINDER, causation_id=done.causation_id)
        for ident, review_date in self.due(now):
            try:
                self.desk.execute(UUID(ident), RemindReview(now=now), ctx)
            except VersionConflict as busy:  # changing too fast: the next pass tries again
                log.info("review reminder of %s deferred: %s", ident, busy)
                continue
            except DomainError as refused:  # reminded, verified, moved on, gone: done
                log.debug("review reminder of %s refused: %s", ident, refused)
                done.refused[ident] = str(refused)
            else:
                done.reminded.append(ident)
            self._done.add((ident, review_date))
        self.reminded += len(done.reminded)
        if done.reminded:
            log.info("review reminders recorded for %d improvement(s)", len(done.reminded))
        return done

    # -- running ---------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None) -> None:
        stop = stop or self._stop
        while not stop.is_set():
            try:
                self.run_pass()
            except Exception:  # a scheduler must outlive a bad moment; the next pass retries
                log.exception("review reminder pass failed; retrying")
            stop.wait(self.poll_interval)

    def start(self) -> ReviewReminders:
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, daemon=True, name="review-reminders")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
