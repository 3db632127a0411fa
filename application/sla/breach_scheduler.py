"""The SLA scheduler: records warnings and breaches when they fall due, not when polled.

It keeps a timer queue (a heap ordered by due time) of the alarms of running clocks, read
from the clock read model. It learns changes by re-reading only the clock rows whose `seq`
is past the last one it saw (one indexed query per poll, never a scan of all tickets), and
sleeps until the earlier of the next alarm and the next poll. A due alarm becomes an
`SlaWarningReached` or `SlaBreached` event of the incident, recorded by
Actor("sla-scheduler", automation) through the ServiceDesk, so it reaches the audit timeline
and Kafka like any other event.

Deadlines fall due on the ticket's own time line: the wall clock minus the ticket's lag (how
far the event that last changed the clock lagged behind its recording, `lag_s` of the clock
row). For a ticket worked here that is the wall clock. For imported history it is the source
time the import has reached, running on from there: an import with the scheduler on gets no
notice of a moment its history has not reached yet (the resolution that ended the clock
earlier may be the next message), and a ticket left open at the end of the import gets its
notices as its own time reaches them. Notices never move a clock (projections/sla/sla_clocks.py),
so this only keeps the audit timeline free of notices about moments that never came.

Exactly once: the incident refuses a second record of the same warning or breach
(IllegalTransition), so a restart, a second scheduler or a stale queue entry cannot
duplicate one. After a restart the queue is rebuilt from the read model, whose alarms are
the ones not yet recorded, so what fell due meanwhile is recorded at once.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple
from uuid import UUID

import orjson
from eventsourcing.persistence import IntegrityError

from application.desk.errors import NotFound
from application.desk.service_desk import ServiceDesk
from application.desk.unit_of_work import UnitOfWork
from domain.incident.commands import IncidentCommand, RecordSlaBreach, RecordSlaWarning
from domain.shared_kernel.actor import Actor, ActorKind
from domain.shared_kernel.command_context import Context
from domain.shared_kernel.errors import DomainError, InvalidValue
from projections.runtime.read_store import ReadStore, Transaction

SCHEDULER = Actor("sla-scheduler", ActorKind.AUTOMATION)
_ROWS = (
    "SELECT ticket_id, metric, seq, alarms, policy_id, policy_version, due_at, lag_s"
    " FROM sla_clocks"
)
log = logging.getLogger(__name__)
AlarmKey = tuple[str, str, str, float | None]  # ticket, metric, kind, threshold


class ClockRow(NamedTuple):
    """A row of the clock read model, as `_ROWS` selects it."""

    ticket_id: str
    metric: str
    seq: int
    alarms: str | None  # JSON: [[when, kind, threshold], ...]
    policy_id: str
    policy_version: int
    due_at: str | None
    lag_s: float | None


@dataclass(order=True, frozen=True)
class Alarm:
    due: float  # epoch seconds on the wall clock: the due moment plus the ticket's lag
    order: int
    ticket_id: str
    metric: str
    kind: str  # "warning" | "breach"
    threshold: float | None  # a warning's percentage of the target; None for a breach
    seq: int
    policy_id: str
    policy_version: int
    due_at: str  # the clock's due time (the breach deadline)

    @property
    def key(self) -> AlarmKey:
        return (self.ticket_id, self.metric, self.kind, self.threshold)

    def command(self) -> IncidentCommand:
        due_at = datetime.fromisoformat(self.due_at)
        if self.kind != "warning":
            return RecordSlaBreach(self.metric, self.policy_id, self.policy_version, due_at)
        if self.threshold is None:
            raise InvalidValue(f"the SLA warning {self.key} names no threshold")
        return RecordSlaWarning(
            self.metric, self.threshold, self.policy_id, self.policy_version, due_at
        )


def _alarm(row: ClockRow, when: str, kind: str, threshold: float | None, order: int) -> Alarm:
    return Alarm(
        datetime.fromisoformat(when).timestamp() + (row.lag_s or 0.0),
        order,
        row.ticket_id,
        row.metric,
        kind,
        threshold,
        int(row.seq),
        row.policy_id,
        int(row.policy_version),
        row.due_at or when,
    )


def _clock_rows(tx: Transaction, where: str, *seqs: int) -> list[ClockRow]:
    return [ClockRow(*row) for row in tx.execute(f"{_ROWS} WHERE {where}", seqs).fetchall()]


def _top_seq(tx: Transaction) -> int:
    row = tx.execute("SELECT value FROM sla_meta WHERE name = 'seq'").fetchone()
    return int(row[0]) if row else 0


class SlaScheduler:
    def __init__(
        self,
        read_db: ReadStore,
        desk: ServiceDesk,
        poll_interval: float = 0.2,
        clock: Callable[[], float] = time.time,
        batch_size: int = 200,
    ) -> None:
        self.read_db, self.desk = read_db, desk
        self.poll_interval, self.clock, self.batch_size = poll_interval, clock, batch_size
        self._heap: list[Alarm] = []
        self._order = itertools.count()
        self._current: dict[tuple[str, str], int] = {}  # clock -> seq of its latest row
        self._done: set[AlarmKey] = set()  # recorded, or refused by the incident
        self.last_seq: int | None = None  # None until the first (full) load
        self.recorded = 0
        self.lateness: list[float] = []  # seconds past due, per recorded event
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_poll = 0.0

    # -- learning deadlines -----------------------------------------------------------

    def refresh(self) -> int:
        """Queue the alarms of clock rows changed since the last look; returns rows read."""
        with self.read_db.transaction(read_only=True) as tx:
            top = _top_seq(tx)
            rows = self._changed_rows(tx, top)
        self.last_seq = top
        for row in rows:
            self._queue(row)
        return len(rows)

    def _changed_rows(self, tx: Transaction, top: int) -> list[ClockRow]:
        if self.last_seq is None:  # (re)start: every running clock with alarms left
            return _clock_rows(tx, "alarms IS NOT NULL AND seq <= %s", top)
        if top > self.last_seq:
            return _clock_rows(tx, "seq > %s AND seq <= %s", self.last_seq, top)
        return []

    def _queue(self, row: ClockRow) -> None:
        self._current[(row.ticket_id, row.metric)] = int(row.seq)
        for when, kind, threshold in orjson.loads(row.alarms) if row.alarms else ():
            alarm = _alarm(row, when, kind, threshold, next(self._order))
            if alarm.key not in self._done:
                heapq.heappush(self._heap, alarm)

    def next_due(self) -> float | None:
        self._drop_stale()
        return self._heap[0].due if self._heap else None

    def _drop_stale(self) -> None:
        while self._heap and not self._current_alarm(self._heap[0]):
            heapq.heappop(self._heap)

    def _current_alarm(self, alarm: Alarm) -> bool:
        """Not recorded yet, and from its clock's latest row."""
        return alarm.key not in self._done and alarm.seq == self._current.get(
            (alarm.ticket_id, alarm.metric)
        )

    # -- recording --------------------------------------------------------------------

    def fire_due(self) -> int:
        """Record every alarm due by now; returns how many events were recorded."""
        recorded = 0
        while due := self._take_due(self.clock()):
            recorded += self._record(due)
        return recorded

    def _take_due(self, now: float) -> list[Alarm]:
        """Up to `batch_size` current alarms due by `now`, off the queue and marked done."""
        due: list[Alarm] = []
        self._drop_stale()
        while self._heap and self._heap[0].due <= now and len(due) < self.batch_size:
            alarm = heapq.heappop(self._heap)
            if self._current_alarm(alarm):
                due.append(alarm)
                self._done.add(alarm.key)  # also stops a duplicate inside this batch
            self._drop_stale()
        return due

    def _record(self, alarms: list[Alarm]) -> int:
        """Record a batch in one transaction; a conflicting write falls back to one by one."""
        try:
            with self.desk.unit_of_work() as work:
                fired = [a for a in alarms if self._fire(work, a)]
                work.commit()
        except IntegrityError:  # an agent wrote to one of them meanwhile
            fired = [a for a in fired if self._record_one(a)]
            self._done.difference_update(a.key for a in alarms if a not in fired)
        done = self.clock()
        self.lateness.extend(done - a.due for a in fired)
        self.recorded += len(fired)
        return len(fired)

    def _fire(self, work: UnitOfWork, alarm: Alarm) -> bool:
        incident = work.get(UUID(alarm.ticket_id))
        try:
            if incident is None:
                raise NotFound(f"no incident with id {alarm.ticket_id}")
            work.run(incident, alarm.command(), self._ctx(alarm))
            return True
        except DomainError as refused:  # already recorded, or the clock no longer runs
            log.debug("SLA alarm %s refused: %s", alarm.key, refused)
            # Not done for good: a reopened ticket's clock brings the alarm back in a
            # newer row; a duplicate is refused again by the incident.
            self._done.discard(alarm.key)
            return False

    def _record_one(self, alarm: Alarm) -> bool:
        try:
            self.desk.execute(UUID(alarm.ticket_id), alarm.command(), self._ctx(alarm))
            return True
        except DomainError:
            return False

    @staticmethod
    def _ctx(alarm: Alarm) -> Context:
        threshold = "" if alarm.threshold is None else f":{alarm.threshold}"
        return Context(
            by=SCHEDULER,
            causation_id=f"sla:{alarm.ticket_id}:{alarm.metric}:{alarm.kind}{threshold}",
        )

    # -- running ------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None) -> None:
        stop = stop or self._stop
        self._next_poll = 0.0
        while not stop.is_set():
            try:
                self._step(stop)
            except Exception:  # a scheduler must outlive a bad moment; nothing is lost
                log.exception("SLA scheduler step failed; retrying")
                self.last_seq = None  # rebuild the queue from the read model
                stop.wait(1.0)

    def _step(self, stop: threading.Event) -> None:
        """Look for changes when a poll is due, record what is due, then sleep until the
        next alarm or poll."""
        now = self.clock()
        if now >= self._next_poll:
            self.refresh()
            self._next_poll = now + self.poll_interval
        self.fire_due()
        due = self.next_due()
        wake = self._next_poll if due is None else min(self._next_poll, due)
        stop.wait(max(0.0, min(wake - self.clock(), self.poll_interval)))

    def start(self) -> SlaScheduler:
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, daemon=True, name="sla-scheduler")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
