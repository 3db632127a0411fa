"""Group commit: the commands that finish at the same moment share one transaction.

Every save takes SQLite's single writer lock (PostgreSQL: a commit and its WAL flush), and
with 16 clients the commands spent most of their time queued for it, one by one. Here a
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
from typing import Any

from eventsourcing.persistence import IntegrityError

log = logging.getLogger(__name__)
# One command's change: each aggregate it touched, with the events collected from it.
Item = list[tuple[Any, list[Any]]]


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
        self._queue: SimpleQueue[tuple[Item | None, Future] | None] = SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.groups = self.saved = 0  # how many transactions for how many commands

    def save(self, *aggregates: Any) -> None:
        """Save the aggregates' pending events together; returns once they are durable."""
        future = self._hand_over(aggregates)
        if future is not None:
            future.result()  # re-raises what saving this command raised

    async def save_async(self, *aggregates: Any) -> None:
        """`save` for a caller on an event loop: it waits without holding a thread.

        Shielded: a cancelled caller (a client gone, a timeout) must not cancel the save
        under way, nor leave the committer a future it can no longer answer."""
        future = self._hand_over(aggregates)
        if future is not None:
            await asyncio.shield(asyncio.wrap_future(future))

    def flush(self) -> None:
        """Returns once everything handed over before it, after-commit work included, is
        done."""
        future: Future = Future()
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
            thread.join(timeout=60)
            if thread.is_alive():  # the database hangs: do not hang the shutdown with it
                log.error("group commit still saving after 60 s; closing without it")

    def _hand_over(self, aggregates: tuple[Any, ...]) -> Future | None:
        change = [(a, events) for a in aggregates if (events := list(a.collect_events()))]
        if not change:
            return None
        future: Future = Future()
        with self._lock:
            if self._closed:
                raise GroupCommitClosed("the service desk is closing; nothing was saved")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name="group-commit")
                self._thread.start()
            self._queue.put((change, future))
        return future

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            while len(group) < self.max_group:
                try:
                    item = self._queue.get_nowait()
                except Empty:
                    break
                if item is None:
                    stop = True
                    break
                group.append(item)
            try:
                self._commit(group)
            except BaseException as error:  # the committer must outlive any one group
                log.exception("group commit failed unexpectedly")
                for _, future in group:
                    if not future.done():
                        future.set_exception(error)

    def _commit(self, group: list[tuple[Item | None, Future]]) -> None:
        markers = [future for item, future in group if item is None]  # flush() calls
        if markers:
            self._commit([(item, future) for item, future in group if item is not None])
            for future in markers:
                future.set_result(None)
            return
        # A future that was cancelled before its turn is not saved; the others can no
        # longer be cancelled, so each gets its answer.
        group = [(item, future) for item, future in group if future.set_running_or_notify_cancel()]
        if not group:
            return
        self._save(group)

    def _save(self, group: list[tuple[Item, Future]]) -> None:
        try:
            self._save_together([item for item, _ in group])
        except IntegrityError as error:
            if len(group) == 1:
                group[0][1].set_exception(error)
                return
            for member in group:  # nothing was written: each alone, in arrival order
                self._save([member])
            return
        except Exception as error:  # not a lost race: whether it was written is unknown
            for _, future in group:
                future.set_exception(error)
            return
        self.groups += 1
        self.saved += len(group)
        for _, future in group:
            future.set_result(None)
        if self._after is not None:
            try:
                self._after([item for item, _ in group])
            except Exception:
                log.exception("after-commit work failed; the commands were saved")
