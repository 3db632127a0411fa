"""The one write path: load an aggregate, run a command, save through group commit.

Every entry point (HTTP, the inbound consumer, the SLA scheduler, policy edits) and every
practice goes through `ServiceDesk`: `create` and `execute` for one command, `unit_of_work`
for a batch. One retry policy decides what a lost race costs: the write runs again on fresh
state until `RETRY_SECONDS` have passed, then it is a `VersionConflict` (409).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from copy import deepcopy
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    LRUCache,
    ProcessingEvent,
)
from eventsourcing.domain import Aggregate, DomainEventProtocol, SnapshotProtocol
from eventsourcing.persistence import IntegrityError, Mapper, Transcoder

from application.desk.errors import NotFound, VersionConflict
from application.desk.group_commit import GroupCommit, Item
from application.desk.practice import Practice
from application.desk.ticket_numbers import FirstNumbers, Sequences, first_number
from application.desk.unit_of_work import UnitOfWork
from domain.shared_kernel.command_context import Context
from domain.shared_kernel.commands import Command, Creation, Rules
from domain.shared_kernel.errors import DomainError
from domain.shared_kernel.priority import PriorityMatrix
from domain.shared_kernel.ticket_number_sequence import TicketNumberSequence

RETRY_SECONDS = 5.0
SEQUENCE_SNAPSHOT_INTERVAL = 200
T = TypeVar("T")


class ServiceDesk(Application[UUID]):
    """An aggregate returned by `create` or `execute` is also this process's saved copy of
    it: read it, and change it only with a command."""

    name = "ServiceDesk"
    is_snapshotting_enabled = True  # the intervals are per instance, from its practices

    def __init__(
        self,
        env: dict[str, Any],
        rules: Rules,
        practices: Sequence[Practice],
        *,
        transcoder: Transcoder,
        snapshot_interval: int = 50,
        number_prefixes: dict[str, str] | None = None,
        first_numbers: FirstNumbers = first_number,
        mapper: Callable[[Transcoder], Mapper[UUID]] | None = None,
        publishing_mapper: Callable[[Transcoder], Mapper[UUID]] | None = None,
    ) -> None:
        self._transcoder, self.rules = transcoder, rules
        # The store's own mappers, if given: the desk's (personal data sealed as recorded,
        # opened as read) and the feeds' (left sealed in what they publish).
        self._mapper_factory, self._publishing_factory = mapper, publishing_mapper
        self.practices = {p.name: p for p in practices}
        self._practice_of = {a: p for p in practices for a in p.aggregates}
        self._prefixes = number_prefixes or {}
        # eventsourcing declares the intervals a ClassVar, yet reads them through the
        # instance; this desk's come from its own practices.
        self.snapshotting_intervals = _snapshot_intervals(practices, snapshot_interval)  # type: ignore[misc]
        self.commits = GroupCommit(self._save_together, after=self._snapshot_saved)
        super().__init__(env)
        self.sequences = Sequences(self.find, first_numbers)
        self._saved = _saved_copies(env)

    def construct_transcoder(self) -> Transcoder:
        return self._transcoder

    def construct_mapper(self) -> Mapper[UUID]:
        if self._mapper_factory is None:
            return super().construct_mapper()
        return self._mapper_factory(self.construct_transcoder())

    @property
    def publishing_mapper(self) -> Mapper[UUID]:
        """What the feeds turn stored events into envelopes with."""
        if self._publishing_factory is None:
            return self.mapper
        if not hasattr(self, "_publishing"):
            self._publishing = self._publishing_factory(self.construct_transcoder())
        return self._publishing

    def close(self) -> None:
        self.commits.close()
        super().close()

    # -- practices -------------------------------------------------------------------------
    def practice(self, name: str) -> Practice:
        return self.practices[name]

    def number_prefix(self, practice: Practice) -> str | None:
        """The configured prefix of a numbered practice; a practice that declares none is
        not numbered, whatever the configuration says."""
        if practice.number_prefix is None:
            return None
        return self._prefixes.get(practice.name, practice.number_prefix)

    @property
    def matrix(self) -> PriorityMatrix:
        return self.rules.matrix

    # -- the write path --------------------------------------------------------------------
    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self)

    def create(self, command: Creation, ctx: Context) -> Any:
        """Run a creation command; its number is taken in the same transaction. Only a lost
        race for a number is retried: an id taken already (a deterministic one) is final."""
        if self.number_prefix(self.practice(command.practice)) is None:
            return self._create_once(command, ctx)
        return self.retrying(lambda: self._create_once(command, ctx), f"a new {command.practice}")

    def _create_once(self, command: Creation, ctx: Context) -> Any:
        with self.unit_of_work() as uow:
            aggregate = uow.create(command, ctx)
            uow.commit()
        return aggregate

    def execute(
        self, aggregate_id: UUID, command: Command, ctx: Context, fresh: bool = False
    ) -> Any:
        """Run a command; a lost race is retried on fresh state, where an expected version
        (If-Match) is checked again."""
        practice = self.practice(command.practice)

        def attempt() -> Any:
            nonlocal fresh
            aggregate, fresh = self._for_command(practice, aggregate_id, fresh)
            judged = self._attempt(aggregate, command, ctx, fresh)
            fresh = True  # whatever happens next is judged on fresh state
            return self._save_one(aggregate) if judged else self.RETRY

        return self.retrying(attempt, str(aggregate_id))

    RETRY = object()

    def retrying(self, attempt: Callable[[], T], what: str) -> T:
        """The one retry policy: run `attempt` until it neither loses a race (IntegrityError)
        nor asks to (`RETRY`), up to `RETRY_SECONDS`."""
        deadline = time.monotonic() + RETRY_SECONDS
        while time.monotonic() < deadline:
            try:
                outcome = attempt()
            except IntegrityError:
                time.sleep(random.uniform(0, 0.002))  # so racing writers fall out of lockstep
                continue
            if outcome is not self.RETRY:
                return outcome
        raise VersionConflict(f"{what} is changing too fast; try again")

    def _save_one(self, aggregate: Any) -> Any:
        self.commits.save(aggregate)
        self.remember(aggregate)
        return aggregate

    async def execute_async(self, aggregate_id: UUID, command: Command, ctx: Context) -> Any:
        """`execute` for an event loop. The usual case, an aggregate this process saved last
        and nobody else changed since, takes no thread: the command runs on the loop and
        awaits its group's commit. Anything else goes the way of `execute`, in a thread."""
        aggregate = self._saved_copy(aggregate_id, self.practice(command.practice))
        if aggregate is not None and await self._saved_on_loop(aggregate, command, ctx):
            return aggregate
        return await asyncio.to_thread(self.execute, aggregate_id, command, ctx, True)

    async def _saved_on_loop(self, aggregate: Any, command: Command, ctx: Context) -> bool:
        """Run the command on the saved copy and save it; False if that was not enough."""
        if not self._attempt(aggregate, command, ctx, fresh=False):
            return False
        try:
            await self.commits.save_async(aggregate)
        except IntegrityError:
            return False  # another process wrote first
        self.remember(aggregate)
        return True

    def _attempt(self, aggregate: Any, command: Command, ctx: Context, fresh: bool) -> bool:
        """Check and run the command; False when it must be judged again on fresh state.

        An aggregate as this process last saved it may be behind the store (another process
        wrote since): a stale If-Match or a refusal on it is not final, and only fresh state
        is worth a query for `_check_expected`."""
        try:
            if not self._expected_holds(aggregate, ctx.expected_version, fresh):
                return False
            command.run(aggregate, ctx, self.rules)
            return True
        except DomainError:
            if fresh:
                raise
            return False

    def _expected_holds(self, aggregate: Any, expected: int | None, fresh: bool) -> bool:
        """False when a saved copy is not at the expected version; on fresh state, a
        VersionConflict unless only clocks moved on since."""
        if expected is None:
            return True
        if not fresh and aggregate.version != expected:
            return False
        self._check_expected(aggregate, expected)
        return True

    def _check_expected(self, aggregate: Any, expected: int) -> None:
        """The caller saw version `expected`; only a clock may have moved on since.

        A warning or breach recorded by the scheduler changes nothing the caller could have
        edited, so it must not turn an agent's conditional command into a 409."""
        if aggregate.version == expected or self._only_clocks_since(aggregate, expected):
            return
        label = self._practice_of[type(aggregate)].label(aggregate)
        raise VersionConflict(
            f"{label} is at version {aggregate.version}, not {expected}, "
            "and was changed meanwhile: reload it and try again"
        )

    def _only_clocks_since(self, aggregate: Any, expected: int) -> bool:
        clock_events = self._practice_of[type(aggregate)].clock_events
        return 0 < expected < aggregate.version and all(
            type(e).__name__ in clock_events for e in self.events.get(aggregate.id, gt=expected)
        )

    # -- loading ---------------------------------------------------------------------------
    def _for_command(self, practice: Practice, aggregate_id: UUID, fresh: bool) -> tuple[Any, bool]:
        """The aggregate to run a command on, and whether it is fresh from the store."""
        aggregate = None if fresh else self._saved_copy(aggregate_id, practice)
        if aggregate is not None:
            return aggregate, False
        return self.get(aggregate_id, practice=practice.name), True

    def _saved_copy(self, aggregate_id: UUID, practice: Practice) -> Any | None:
        """This process's copy as saved last, if it is one of the practice's aggregates (a
        command for another practice is judged on the store, which answers NotFound)."""
        if self._saved is None:
            return None
        try:
            saved = self._saved.get(aggregate_id)
        except KeyError:
            return None
        return deepcopy(saved) if isinstance(saved, practice.aggregates) else None

    def remember(self, *aggregates: Any) -> None:
        if self._saved is not None:
            for aggregate in aggregates:
                self._saved.put(aggregate.id, aggregate)

    def get(
        self, aggregate_id: UUID, version: int | None = None, practice: str | None = None
    ) -> Any:
        """The aggregate (of the practice, when one is named), or NotFound."""
        aggregate = self._stored(aggregate_id, version)
        wanted = self.practice(practice) if practice else None
        if aggregate is None or (wanted and not isinstance(aggregate, wanted.aggregates)):
            raise NotFound(f"no {_noun(wanted)} with id {aggregate_id}")
        return aggregate

    def find(self, aggregate_id: Any) -> Any | None:
        """The aggregate, fresh from the store, or None if there is none."""
        return self._stored(aggregate_id)

    def _stored(self, aggregate_id: UUID, version: int | None = None) -> Aggregate | None:
        try:
            aggregate: Aggregate = self.repository.get(aggregate_id, version=version)
        except AggregateNotFoundError:
            return None
        return aggregate

    def stored_events(self) -> int:
        return self.recorder.max_notification_id() or 0

    # -- saving ----------------------------------------------------------------------------
    def _save_together(self, items: Sequence[Item]) -> None:
        """One transaction for the events of several commands (application/desk/group_commit.py):
        what `save` does, for events already collected from their aggregates."""
        processing: ProcessingEvent[UUID] = ProcessingEvent()
        for change in items:
            for aggregate, events in change:
                processing.events.extend(events)
                processing.aggregates[aggregate.id] = aggregate
        self._notify(self._record(processing))

    def _snapshot_saved(self, items: Sequence[Item]) -> None:
        """Snapshots, after the commands were answered, from the aggregates as saved.

        The library's way reloads the aggregate from the store inside the save: with many
        aggregates crossing their interval at once, every command of that group would wait
        for those reloads. A snapshot at the version after the command is as good as one at
        the interval's multiple."""
        if self.snapshots is None:
            return
        for change in items:
            for aggregate, events in change:
                if self._snapshot_due(aggregate, events):
                    self.snapshots.put([self._snapshot(aggregate)])

    def _snapshot_due(
        self, aggregate: Aggregate, events: Sequence[DomainEventProtocol[UUID]]
    ) -> bool:
        interval = self.snapshotting_intervals.get(type(aggregate))
        if not interval:
            return False
        return any(e.originator_version % interval == 0 for e in events)

    def _snapshot(self, aggregate: Aggregate) -> SnapshotProtocol[UUID]:
        snapshot_class: type[SnapshotProtocol[UUID]] | None = getattr(
            type(aggregate), "Snapshot", self.snapshot_class
        )
        if snapshot_class is None:
            raise TypeError(f"{type(aggregate).__name__} has no Snapshot class")
        snapshot: SnapshotProtocol[UUID] = snapshot_class.take(aggregate)  # typed Any there
        return snapshot


def _saved_copies(env: dict[str, Any]) -> LRUCache[UUID, Any] | None:
    """The aggregates this process saved last, as saved. A command starts from one without
    reading the store: if another process wrote since, its save fails on the version and it
    runs again on fresh state, so optimistic concurrency still decides."""
    size = int(env.get("AGGREGATE_CACHE_MAXSIZE") or 0)
    return LRUCache(size) if size else None


def _noun(practice: Practice | None) -> str:
    return practice.noun or practice.name if practice else "aggregate"


def _snapshot_intervals(practices: Sequence[Practice], interval: int) -> dict[type, int]:
    intervals: dict[type, int] = {TicketNumberSequence: SEQUENCE_SNAPSHOT_INTERVAL}
    for practice in practices:
        if practice.snapshots:
            intervals.update(dict.fromkeys(practice.aggregates, interval))
    return intervals
