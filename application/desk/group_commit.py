"""Group commit: the commands that finish at the same moment share one transaction.

Every save takes SQLite's single writer lock (PostgreSQL: a commit and its WAL flush), so
concurrent commands saved one by one would spend most of their time queued for it. Here a
command thread hands its aggregate to one committer thread and waits; the committer saves
whatever has gathered meanwhile in ONE transaction, so that N concurrent commands cost one
lock hand-off and one durable commit instead of N.

The outcome of each command is exactly what its own save would have been: if the shared
transaction fails on a version (two commands raced on one incident, so one event version
was taken twice), nothing of it was written and each command of the group is saved alone,
in order, so that only the loser gets the `IntegrityError` and retries on fresh state. Any
other failure (the database went away mid-commit) goes to every command of the group as
it is: whether it was written is unknown, and a retry could apply it twice.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from queue import Empty, SimpleQueue
from uuid import UUID

from eventsourcing.domain import Aggregate, DomainEventProtocol
from eventsourcing.persistence import IntegrityError

log = logging.getLogger(__name__)
# One command's change: each aggregate it touched, with the events collected from it.
Item = list[tuple[Aggregate, Sequence[DomainEventProtocol[UUID]]]]
Answer = Future[None]
# A command's change and the future it waits on; no change: a `flush` marker.
Handed = tuple[Item | None, Answer]


class GroupCommitClosed(RuntimeError):
    pass


class GroupCommit:
    def __init__(
        self,
        save_together: Callable[[Sequence[Item]], None],
        after: Callable[[Sequence[Item]], None] | None = None,
        max_group: int = 64,
    ) -> None:
        """`after` runs once the commands of a saved group were answered: work that none
        of them should wait for (snapshots). Its failure is logged, never raised."""
        self._save_together, self._after, self.max_group = save_together, after, max_group
        self._queue: SimpleQueue[Handed | None] = SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.groups = self.saved = 0  # how many transactions for how many commands

    def save(self, *aggregates: Aggregate) -> None:
        """Save the aggregates' pending events together; returns once they are durable."""
        future = self._hand_over(aggregates)
        if future is not None:
            future.result()  # re-raises what saving this command raised

    async def save_async(self, *aggregates: Aggregate) -> None:
        """`save` for a caller on an event loop: it waits without holding a thread.

        Shielded: a cancelled caller (a client gone, a timeout) must not cancel the save
        under way, nor leave the committer a future it can no longer answer."""
        future = self._hand_over(aggregates)
        if future is not None:
            await asyncio.shield(asyncio.wrap_future(future))

    def flush(self) -> None:
        """Returns once everything handed over before it, after-commit work included, is
        done."""
        future: Answer = Future()
        with self._lock:
            if self._thread is None:
                return
            self._queue.put((None, future))
        future.result()

    def close(self) -> None:
        """Saves what was handed over, then stops; later saves raise GroupCommitClosed."""
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            _join(thread)

    # -- handing over ----------------------------------------------------------------------
    def _hand_over(self, aggregates: tuple[Aggregate, ...]) -> Answer | None:
        change: Item = [(a, events) for a in aggregates if (events := list(a.collect_events()))]
        if not change:
            return None
        future: Answer = Future()
        with self._lock:
            self._ensure_running()
            self._queue.put((change, future))
        return future

    def _ensure_running(self) -> None:
        """Called with the lock held."""
        if self._closed:
            raise GroupCommitClosed("the service desk is closing; nothing was saved")
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name="group-commit")
            self._thread.start()

    # -- the committer ---------------------------------------------------------------------
    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                return
            group, stop = self._gather(first)
            self._commit_safely(group)

    def _gather(self, first: Handed) -> tuple[list[Handed], bool]:
        """`first` and what else is queued, up to `max_group`; True when told to stop."""
        group = [first]
        while len(group) < self.max_group:
            try:
                item = self._queue.get_nowait()
            except Empty:
                break
            if item is None:
                return group, True
            group.append(item)
        return group, False

    def _commit_safely(self, group: list[Handed]) -> None:
        try:
            self._commit(group)
        except BaseException as error:  # the committer must outlive any one group
            log.exception("group commit failed unexpectedly")
            _fail([future for _, future in group if not future.done()], error)

    def _commit(self, group: list[Handed]) -> None:
        markers = [future for item, future in group if item is None]  # flush() calls
        self._start_saving([(item, future) for item, future in group if item is not None])
        for future in markers:
            future.set_result(None)

    def _start_saving(self, changes: list[tuple[Item, Answer]]) -> None:
        # A future that was cancelled before its turn is not saved; the others can no
        # longer be cancelled, so each gets its answer.
        running = [
            (item, future) for item, future in changes if future.set_running_or_notify_cancel()
        ]
        if running:
            self._save(running)

    def _save(self, group: list[tuple[Item, Answer]]) -> None:
        try:
            self._save_together([item for item, _ in group])
        except IntegrityError as error:
            self._save_alone(group, error)
            return
        except Exception as error:  # not a lost race: whether it was written is unknown
            _fail([future for _, future in group], error)
            return
        self._saved(group)

    def _save_alone(self, group: list[tuple[Item, Answer]], error: IntegrityError) -> None:
        """Nothing of the group was written: each command alone, in arrival order."""
        if len(group) == 1:
            group[0][1].set_exception(error)
            return
        for member in group:
            self._save([member])

    def _saved(self, group: list[tuple[Item, Answer]]) -> None:
        self.groups += 1
        self.saved += len(group)
        for _, future in group:
            future.set_result(None)
        if self._after is not None:
            _run_after(self._after, [item for item, _ in group])


def _run_after(after: Callable[[Sequence[Item]], None], items: list[Item]) -> None:
    try:
        after(items)
    except Exception:
        log.exception("after-commit work failed; the commands were saved")


def _fail(futures: list[Answer], error: BaseException) -> None:
    for future in futures:
        future.set_exception(error)


def _join(thread: threading.Thread) -> None:
    thread.join(timeout=60)
    if thread.is_alive():  # the database hangs: do not hang the shutdown with it
        log.error("group commit still saving after 60 s; closing without it")
