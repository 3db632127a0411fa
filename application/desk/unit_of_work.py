"""A unit of work: the aggregates one batch touches, changed by commands, saved together.

Each aggregate is loaded once, fresh from the store; new ones are added; `commit` saves
every change, the ticket numbers taken included, in one transaction through group commit.
A savepoint lets a batch drop one message's changes and go on with the rest.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol
from uuid import UUID

from application.desk.group_commit import GroupCommit
from application.desk.practice import Practice
from application.desk.ticket_numbers import Sequences
from domain.shared_kernel.command_context import Context
from domain.shared_kernel.commands import Command, Creation, Rules
from domain.shared_kernel.ticket_number_sequence import TicketNumberSequence


class Desk(Protocol):
    """What a unit of work needs of the service desk."""

    rules: Rules
    commits: GroupCommit
    sequences: Sequences

    def practice(self, name: str) -> Practice: ...
    def number_prefix(self, practice: Practice) -> str | None: ...
    def find(self, aggregate_id: Any) -> Any | None: ...
    def remember(self, *aggregates: Any) -> None: ...


class Numbers:
    """The numbers one unit of work takes from one practice's sequence, issued at commit
    in the order taken, so a savepoint can give back the last ones."""

    def __init__(self, prefix: str, sequence: TicketNumberSequence) -> None:
        self.prefix, self.sequence = prefix, sequence
        self.taken: list[tuple[UUID, Context]] = []

    def upcoming(self) -> str:
        return self.sequence.number_at(self.prefix, len(self.taken))

    def issue(self) -> None:
        for ticket_id, ctx in self.taken:
            self.sequence.issue(self.prefix, ticket_id, ctx.by, ctx.causation_id)


@dataclass
class Savepoint:
    """Numbers taken before it, what was touched since, and a copy of each aggregate that
    was loaded before it, as it was when first touched after it."""

    numbers_taken: dict[str, int]
    touched: set[UUID] = field(default_factory=set)
    before: dict[UUID, Any] = field(default_factory=dict)


class UnitOfWork:
    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        self.loaded: dict[UUID, Any] = {}
        self.numbers: dict[str, Numbers] = {}
        self.savepoint_: Savepoint | None = None
        self.committed = False

    def __enter__(self) -> UnitOfWork:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for practice in self.numbers:
            self.desk.sequences.release(practice)

    # -- reading and adding ------------------------------------------------------------
    def get(self, aggregate_id: UUID) -> Any | None:
        """The aggregate, loaded once per unit of work; None if there is none."""
        self._touch(aggregate_id)
        if aggregate_id not in self.loaded:
            self.loaded[aggregate_id] = self.desk.find(aggregate_id)
        return self.loaded[aggregate_id]

    def add(self, aggregate: Any) -> None:
        self._touch(aggregate.id)
        self.loaded[aggregate.id] = aggregate

    def _touch(self, aggregate_id: UUID) -> None:
        savepoint = self.savepoint_
        if savepoint is None or aggregate_id in savepoint.touched:
            return
        if self.loaded.get(aggregate_id) is not None:
            savepoint.before[aggregate_id] = deepcopy(self.loaded[aggregate_id])
        savepoint.touched.add(aggregate_id)

    # -- commands ----------------------------------------------------------------------
    def create(self, command: Creation, ctx: Context) -> Any:
        numbers = self._numbers(self.desk.practice(command.practice))
        aggregate = command.run(numbers.upcoming() if numbers else None, ctx, self.desk.rules)
        if numbers is not None:
            numbers.taken.append((aggregate.id, ctx))
        self.add(aggregate)
        return aggregate

    def run(self, aggregate: Any, command: Command, ctx: Context) -> Any:
        command.run(aggregate, ctx, self.desk.rules)
        return aggregate

    def _numbers(self, practice: Practice) -> Numbers | None:
        prefix = self.desk.number_prefix(practice)
        if prefix is None:
            return None
        if practice.name not in self.numbers:
            self.numbers[practice.name] = Numbers(prefix, self.desk.sequences.hold(practice.name))
        return self.numbers[practice.name]

    # -- savepoints and commit ---------------------------------------------------------
    def savepoint(self) -> Savepoint:
        """From here on, what is touched can be given back with `rollback`."""
        self.savepoint_ = Savepoint({p: len(n.taken) for p, n in self.numbers.items()})
        return self.savepoint_

    def rollback(self, savepoint: Savepoint) -> None:
        """Put back what was touched since the savepoint as it was (what was new since is
        forgotten, and reloaded on the next `get`) and give back the numbers taken since."""
        for aggregate_id in savepoint.touched:
            if aggregate_id in savepoint.before:
                self.loaded[aggregate_id] = savepoint.before[aggregate_id]
            else:
                self.loaded.pop(aggregate_id, None)
        savepoint.touched.clear()
        savepoint.before.clear()
        for practice, numbers in self.numbers.items():
            del numbers.taken[savepoint.numbers_taken.get(practice, 0) :]

    def _check_numbered(self, saved: list[Any]) -> None:
        """Every number taken goes with its ticket, or the sequence would have a gap."""
        ids = {aggregate.id for aggregate in saved}
        orphans = [t for n in self.numbers.values() for t, _ in n.taken if t not in ids]
        if orphans:
            raise RuntimeError(f"numbers taken for tickets not being saved: {orphans}")

    def changed(self) -> list[Any]:
        return [a for a in self.loaded.values() if a is not None and a.pending_events]

    def commit(self) -> list[Any]:
        """Save every change in one transaction, once; returns the aggregates saved."""
        if self.committed:
            raise RuntimeError("a unit of work commits once")
        saved = self.changed()
        self._check_numbered(saved)
        for numbers in self.numbers.values():
            numbers.issue()
        sequences = [n.sequence for n in self.numbers.values() if n.taken]
        if saved or sequences:
            self.desk.commits.save(*saved, *sequences)
        self.committed = True
        self.desk.remember(*saved)
        return saved
