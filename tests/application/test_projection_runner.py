"""ProjectionRunner: exactly-once application of feed batches to read models on SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import ClassVar

import pytest

from domain.incident.commands import Acknowledge, Assign, Comment, Hold, Resolve
from infra.sql.database import SqliteDatabase, Tx
from projections.audit.audit_trail import AuditTrailProjection
from projections.incident.incident_queue import COLUMNS, IncidentsProjection
from projections.runtime.envelope import Envelope
from projections.runtime.runner import Projection, ProjectionRunner
from tests.builders import drive, envelopes_of, new_incident


class AppliedLog(Projection):
    """Records every apply call, with no key, so that a double application shows."""

    name: ClassVar[str] = "applied_log"
    tables: ClassVar[tuple[str, ...]] = ("t_applied",)

    def ddl(self):
        return [
            "CREATE TABLE IF NOT EXISTS t_applied (aggregate_id TEXT, version INTEGER,"
            " event_type TEXT)"
        ]

    def apply(self, tx: Tx, event: Envelope) -> None:
        tx.execute(
            "INSERT INTO t_applied VALUES (%s, %s, %s)",
            (event.aggregate_id, event.aggregate_version, event.name),
        )


@pytest.fixture
def db(tmp_path) -> Iterator[SqliteDatabase]:
    database = SqliteDatabase(tmp_path / "read.db")
    yield database
    database.close()


def make_runner(db, projection) -> ProjectionRunner:
    runner = ProjectionRunner(db, projection)
    runner.setup()
    return runner


@pytest.fixture
def log_runner(db) -> ProjectionRunner:
    return make_runner(db, AppliedLog())


def applied(db) -> list[tuple]:
    with db.transaction() as tx:
        return tx.execute(
            "SELECT aggregate_id, version, event_type FROM t_applied ORDER BY rowid"
        ).fetchall()


def feed() -> list[tuple[int, Envelope]]:
    """Ten events of two incidents, interleaved, at positions 1..10."""
    a = drive(
        new_incident("INC0001001"),
        [Assign(group="network"), Acknowledge(), Hold(reason="awaiting_vendor"), Resolve(code="x")],
    )
    b = drive(
        new_incident("INC0001002"),
        [Comment(text="hi"), Assign(group="messaging"), Acknowledge(), Comment(text="bye")],
    )
    ea, eb = a.collect_events(), b.collect_events()
    ordered = [ea[0], eb[0], ea[1], eb[1], ea[2], eb[2], ea[3], eb[3], ea[4], eb[4]]
    return list(enumerate(envelopes_of(ordered), start=1))


def as_rows(records) -> list[tuple]:
    return [(e.aggregate_id, e.aggregate_version, e.name) for _, e in records]


def test_a_batch_applies_in_order_and_returns_the_next_position(log_runner, db):
    records = feed()
    assert log_runner.position("kafka", 0) == 0
    assert log_runner.apply_batch("kafka", 0, 0, records[:4]) == 5
    assert log_runner.apply_batch("kafka", 0, 5, records[4:]) == 11
    assert applied(db) == as_rows(records)
    assert log_runner.position("kafka", 0) == 11


def test_the_same_batch_twice_applies_once(log_runner, db):
    records = feed()
    assert log_runner.apply_batch("kafka", 0, 0, records) == 11
    # redelivered after the caller already knew the new position
    assert log_runner.apply_batch("kafka", 0, 11, records) == 11
    # redelivered by a caller that still believes the old position
    assert log_runner.apply_batch("kafka", 0, 0, records) == 11
    assert applied(db) == as_rows(records)


def test_an_overlapping_batch_applies_only_the_new_tail(log_runner, db):
    records = feed()
    assert log_runner.apply_batch("kafka", 0, 0, records[:6]) == 7
    assert log_runner.apply_batch("kafka", 0, 7, records[3:]) == 11
    assert applied(db) == as_rows(records)


def test_a_duplicate_event_at_a_later_position_is_dropped(log_runner, db):
    records = feed()
    assert log_runner.apply_batch("kafka", 0, 0, records[:5]) == 6
    # a relay that crashed after publishing 4..5 republishes them at positions 6 and 7
    retried = [
        (6, records[3][1]),
        (7, records[4][1]),
        *((pos + 2, event) for pos, event in records[5:]),
    ]
    assert log_runner.apply_batch("kafka", 0, 6, retried) == 13
    assert applied(db) == as_rows(records)


def test_a_duplicate_inside_one_batch_is_dropped(log_runner, db):
    records = feed()
    doubled = [records[0], records[1], (3, records[1][1]), (4, records[2][1])]
    assert log_runner.apply_batch("kafka", 0, 0, doubled) == 5
    assert applied(db) == as_rows(records[:3])


def test_a_stale_expected_applies_nothing_and_returns_the_stored_position(log_runner, db):
    records = feed()
    assert log_runner.apply_batch("kafka", 0, 0, records[:3]) == 4
    before = applied(db)
    assert log_runner.apply_batch("kafka", 0, 2, records[3:]) == 4  # behind
    assert log_runner.apply_batch("kafka", 0, 9, records[3:]) == 4  # ahead
    assert applied(db) == before
    assert log_runner.position("kafka", 0) == 4


def test_an_empty_batch_changes_nothing(log_runner, db):
    assert log_runner.apply_batch("kafka", 0, 0, []) == 0
    assert log_runner.positions("kafka") == {0: 0}  # the locked row exists, at 0
    assert applied(db) == []


def test_positions_are_per_source_and_partition(log_runner, db):
    records = feed()
    assert log_runner.apply_batch("kafka", 0, 0, records[:3]) == 4
    assert log_runner.apply_batch("kafka", 1, 0, [(0, records[3][1])]) == 1
    assert log_runner.apply_batch("kafka", 2, 0, [(40, records[4][1])]) == 41
    assert log_runner.apply_batch("notifications", 0, 0, [(7, records[5][1])]) == 8
    assert log_runner.positions("kafka") == {0: 4, 1: 1, 2: 41}
    assert log_runner.positions("notifications") == {0: 8}
    assert log_runner.position("kafka", 1) == 1
    assert log_runner.position("kafka", 3) == 0
    assert applied(db) == as_rows(records[:6])


def test_positions_are_per_projection(db):
    records = feed()
    one, two = make_runner(db, AppliedLog()), make_runner(db, IncidentsProjection())
    assert one.apply_batch("kafka", 0, 0, records[:4]) == 5
    assert two.position("kafka", 0) == 0
    assert two.apply_batch("kafka", 0, 0, records) == 11
    assert one.position("kafka", 0) == 5


def read_all(db) -> dict[str, list[tuple]]:
    with db.transaction() as tx:
        return {
            "rm_incidents": tx.execute(
                f"SELECT {', '.join(COLUMNS)} FROM rm_incidents ORDER BY id"
            ).fetchall(),
            "rm_audit_trail": tx.execute(
                "SELECT * FROM rm_audit_trail ORDER BY aggregate_id, version"
            ).fetchall(),
            "rm_audit_heads": tx.execute(
                "SELECT * FROM rm_audit_heads ORDER BY aggregate_id"
            ).fetchall(),
        }


def test_reset_empties_tables_and_positions_and_a_replay_rebuilds_the_same_rows(db):
    records = feed()
    runners = [make_runner(db, IncidentsProjection()), make_runner(db, AuditTrailProjection())]
    for runner in runners:
        assert runner.apply_batch("kafka", 0, 0, records[:5]) == 6
        assert runner.apply_batch("kafka", 1, 0, [(0, e) for _, e in records[5:6]]) == 1
        assert runner.apply_batch("kafka", 0, 6, records[6:]) == 11
    built = read_all(db)
    assert len(built["rm_incidents"]) == 2 and len(built["rm_audit_trail"]) == 10

    for runner in runners:
        runner.reset()
        assert runner.positions("kafka") == {}
    assert read_all(db) == {"rm_incidents": [], "rm_audit_trail": [], "rm_audit_heads": []}
    with db.transaction() as tx:
        assert tx.execute("SELECT COUNT(*) FROM projection_versions").fetchone()[0] == 0

    for runner in runners:
        assert runner.apply_batch("kafka", 0, 0, records) == 11
    assert read_all(db) == built


def test_reset_of_one_projection_leaves_the_others_alone(db):
    records = feed()
    incidents_runner = make_runner(db, IncidentsProjection())
    log_runner = make_runner(db, AppliedLog())
    for runner in (incidents_runner, log_runner):
        runner.apply_batch("kafka", 0, 0, records)
    log_runner.reset()
    assert applied(db) == []
    assert incidents_runner.position("kafka", 0) == 11
    with db.transaction() as tx:
        assert tx.execute("SELECT COUNT(*) FROM rm_incidents").fetchone()[0] == 2
    # the reset projection replays everything; the versions it had seen were forgotten too
    assert log_runner.apply_batch("kafka", 0, 0, records) == 11
    assert applied(db) == as_rows(records)


def test_a_database_that_is_away_rolls_back_the_batch_and_its_position(db):
    records = feed()

    class Unavailable(AppliedLog):
        name = "unavailable"

        def apply(self, tx, event):
            super().apply(tx, event)
            if event.aggregate_version == 3:
                raise sqlite3.OperationalError("disk I/O error")

    runner = make_runner(db, Unavailable())
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        runner.apply_batch("kafka", 0, 0, records)
    assert applied(db) == []
    assert runner.position("kafka", 0) == 0
    assert runner.quarantined() == []
    assert runner.apply_batch("kafka", 0, 0, records[:4]) == 5
    assert applied(db) == as_rows(records[:4])
