"""Group commit: concurrent saves share a transaction; a failed group is retried one by one."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from eventsourcing.persistence import IntegrityError

from application.desk.group_commit import GroupCommit, GroupCommitClosed


class Pending:
    """An aggregate with pending events, as far as GroupCommit can tell."""

    def __init__(self, name: str) -> None:
        self.name, self._events = name, [f"{name}-event"]

    def collect_events(self):
        events, self._events = self._events, []
        return events


class Store:
    """A fake transaction log at the edge: records each transaction's aggregates."""

    def __init__(self, refuse: set[str] = frozenset()) -> None:
        self.transactions: list[list[str]] = []
        self.refuse = refuse
        self.first_started = threading.Event()
        self.release_first = threading.Event()

    def save_together(self, items) -> None:
        names = [aggregate.name for change in items for aggregate, _ in change]
        if not self.transactions and not self.first_started.is_set():
            self.first_started.set()
            self.release_first.wait(5)
        if self.refuse & set(names):
            raise IntegrityError(f"version taken: {sorted(self.refuse & set(names))}")
        self.transactions.append(names)


def save_in_threads(commits: GroupCommit, names: list[str]):
    outcome: dict[str, BaseException | None] = {}

    def save(name: str) -> None:
        try:
            commits.save(Pending(name))
            outcome[name] = None
        except BaseException as error:  # noqa: BLE001 - the test inspects it
            outcome[name] = error

    threads = [threading.Thread(target=save, args=(n,)) for n in names]
    for thread in threads:
        thread.start()
    return outcome, threads


def wait_queued(commits: GroupCommit, count: int) -> None:
    deadline = time.monotonic() + 5
    while commits._queue.qsize() < count and time.monotonic() < deadline:
        time.sleep(0.001)


def test_saves_that_arrive_while_a_transaction_runs_share_the_next_one():
    store = Store()
    commits = GroupCommit(store.save_together)
    outcome, first = save_in_threads(commits, ["a"])
    assert store.first_started.wait(5)
    outcome2, rest = save_in_threads(commits, ["b", "c", "d", "e"])
    wait_queued(commits, 4)
    store.release_first.set()
    for thread in first + rest:
        thread.join(5)
    commits.close()
    assert store.transactions[0] == ["a"]
    assert sorted(store.transactions[1]) == ["b", "c", "d", "e"]
    assert (commits.groups, commits.saved) == (2, 5)
    assert {**outcome, **outcome2} == dict.fromkeys("abcde")


def test_a_failed_group_is_saved_one_by_one_and_only_the_loser_gets_the_error():
    store = Store(refuse={"c"})
    commits = GroupCommit(store.save_together)
    _, first = save_in_threads(commits, ["a"])
    assert store.first_started.wait(5)
    outcome, rest = save_in_threads(commits, ["b", "c", "d"])
    wait_queued(commits, 3)
    store.release_first.set()
    for thread in first + rest:
        thread.join(5)
    commits.close()
    assert sorted(sum(store.transactions[1:], [])) == ["b", "d"]
    assert all(len(t) == 1 for t in store.transactions[1:])  # each alone after the failure
    assert outcome["b"] is None and outcome["d"] is None
    assert isinstance(outcome["c"], IntegrityError)


def test_an_aggregate_without_pending_events_needs_no_transaction():
    store = Store()
    store.first_started.set()  # nothing to hold back
    commits = GroupCommit(store.save_together)
    aggregate = Pending("a")
    aggregate.collect_events()
    commits.save(aggregate)
    commits.close()
    assert store.transactions == []


def test_an_error_reaches_the_caller_of_a_lone_save():
    store = Store(refuse={"a"})
    store.first_started.set()
    commits = GroupCommit(store.save_together)
    with pytest.raises(IntegrityError, match="version taken"):
        commits.save(Pending("a"))
    commits.close()


def test_after_commit_work_runs_once_the_commands_were_answered_and_flush_waits_for_it():
    store = Store()
    store.first_started.set()
    answered, after = threading.Event(), []

    def snapshot(items) -> None:
        assert answered.wait(5)  # the command was answered before this began
        after.extend(aggregate.name for change in items for aggregate, _ in change)

    commits = GroupCommit(store.save_together, after=snapshot)
    commits.save(Pending("a"))
    answered.set()
    commits.flush()
    assert after == ["a"]
    commits.close()


def test_failing_after_commit_work_does_not_fail_the_saved_command(caplog):
    store = Store()
    store.first_started.set()

    def broken(items) -> None:
        raise RuntimeError("snapshot store away")

    commits = GroupCommit(store.save_together, after=broken)
    commits.save(Pending("a"))
    commits.flush()
    commits.close()
    assert store.transactions == [["a"]]
    assert "after-commit work failed" in caplog.text


def test_a_failure_other_than_a_lost_race_reaches_every_command_of_the_group_unretried():
    calls: list[list[str]] = []
    first_blocked, release = threading.Event(), threading.Event()

    def first_blocks_then_the_database_is_gone(items) -> None:
        calls.append([aggregate.name for change in items for aggregate, _ in change])
        if len(calls) == 1:
            first_blocked.set()
            release.wait(5)
            return
        raise ConnectionError("server closed the connection during COMMIT")

    commits = GroupCommit(first_blocks_then_the_database_is_gone)
    _, first = save_in_threads(commits, ["a"])
    assert first_blocked.wait(5)
    outcome, rest = save_in_threads(commits, ["b", "c"])
    wait_queued(commits, 2)
    release.set()
    for thread in first + rest:
        thread.join(5)
    commits.close()
    assert len(calls) == 2 and sorted(calls[1]) == ["b", "c"]  # no one-by-one retry
    assert all(isinstance(outcome[n], ConnectionError) for n in "bc")


def test_a_cancelled_caller_neither_stops_its_save_nor_the_committer():
    store = Store()
    commits = GroupCommit(store.save_together)

    async def cancel_while_saving() -> None:
        task = asyncio.ensure_future(commits.save_async(Pending("a")))
        await asyncio.to_thread(store.first_started.wait, 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        store.release_first.set()

    asyncio.run(cancel_while_saving())
    commits.save(Pending("b"))  # the committer is alive and answers
    commits.close()
    assert store.transactions == [["a"], ["b"]]


def test_after_close_what_was_handed_over_is_saved_and_new_saves_are_refused():
    store = Store()
    store.first_started.set()
    commits = GroupCommit(store.save_together)
    commits.save(Pending("a"))
    commits.close()
    with pytest.raises(GroupCommitClosed):
        commits.save(Pending("b"))
    assert store.transactions == [["a"]]
