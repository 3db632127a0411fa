"""A read model that cannot fold one event quarantines that aggregate; the rest flows on."""

from __future__ import annotations

import pytest

from tests.application.test_projection_runner import (
    AppliedLog,
    applied,
    as_rows,
    db,  # noqa: F401 - a fixture
    feed,
    make_runner,
)


class Picky(AppliedLog):
    """Cannot fold the third event of one incident until `fixed`."""

    name = "picky"

    def __init__(self, poison_aggregate: str) -> None:
        self.poison_aggregate, self.fixed = poison_aggregate, False

    def apply(self, tx, event):
        super().apply(tx, event)
        if (
            event.aggregate_id == self.poison_aggregate
            and event.aggregate_version == 3
            and not self.fixed
        ):
            raise OverflowError("date value out of range")


@pytest.fixture
def records():
    return feed()  # a1 b1 a2 b2 a3 b3 a4 b4 a5 b5 at positions 1..10


@pytest.fixture
def picky(db, records):
    return make_runner(db, Picky(records[0][1].aggregate_id))


def test_a_poison_event_quarantines_its_aggregate_and_the_rest_flows_on(db, records, picky):
    a = records[0][1].aggregate_id
    assert picky.apply_batch("kafka", 0, 0, records) == 11
    assert picky.position("kafka", 0) == 11
    b_events = [r for r in records if r[1].aggregate_id != a]
    assert [row for row in applied(db) if row[0] != a] == as_rows(b_events)
    assert [row for row in applied(db) if row[0] == a] == as_rows(records[0:3:2])
    [quarantined] = picky.quarantined()
    assert (quarantined.aggregate_id, quarantined.version) == (a, 3)
    assert quarantined.error == "OverflowError: date value out of range"
    assert quarantined.waiting == 3  # versions 3, 4 and 5
    assert picky.quarantine_count() == 1


def test_later_events_of_a_quarantined_aggregate_wait_in_later_batches(db, records, picky):
    a = records[0][1].aggregate_id
    assert picky.apply_batch("kafka", 0, 0, records[:6]) == 7  # a3 fails here
    assert picky.apply_batch("kafka", 0, 7, records[6:]) == 11  # a4, a5 wait
    assert [row for row in applied(db) if row[0] == a] == as_rows(records[0:3:2])
    assert picky.quarantined()[0].waiting == 3


def test_retry_after_a_fix_folds_the_waiting_events_in_order(db, records, picky):
    a = records[0][1].aggregate_id
    picky.apply_batch("kafka", 0, 0, records)
    assert picky.retry() == (0, 1)  # not fixed yet: still quarantined, nothing applied twice
    assert picky.quarantined()[0].version == 3
    picky.projection.fixed = True
    assert picky.retry() == (1, 0)
    assert picky.quarantined() == []
    a_rows = [row for row in applied(db) if row[0] == a]
    assert a_rows == as_rows([r for r in records if r[1].aggregate_id == a])
    # the aggregate flows normally again: a redelivery is still dropped as a duplicate
    assert picky.apply_batch("kafka", 0, 0, records) == 11
    assert len(applied(db)) == len(records)


def test_a_reset_forgets_the_quarantine(db, records, picky):
    picky.apply_batch("kafka", 0, 0, records)
    picky.reset()
    assert picky.quarantined() == []


def test_on_postgresql_quarantine_retry_and_reset_hold_the_same(pg_database, records):
    from infra.sql.database import PostgresDatabase

    database = PostgresDatabase(pg_database)
    try:
        picky = make_runner(database, Picky(records[0][1].aggregate_id))
        a = records[0][1].aggregate_id
        assert picky.apply_batch("kafka", 0, 0, records) == 11  # savepoints roll back one event
        [quarantined] = picky.quarantined()
        assert (quarantined.aggregate_id, quarantined.version, quarantined.waiting) == (a, 3, 3)
        picky.projection.fixed = True
        assert picky.retry() == (1, 0)
        assert folded(database) == len(records)  # each event once
        picky.reset()
        assert picky.position("kafka", 0) == 0 and folded(database) == 0
        assert picky.quarantined() == []
    finally:
        database.close()


def folded(database) -> int:
    with database.transaction() as tx:
        return tx.execute("SELECT COUNT(*) FROM t_applied").fetchone()[0]
