"""The same ServiceDesk and read models on a real PostgreSQL server (event store + read DB)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest

from application.desk.errors import VersionConflict
from domain.incident.commands import Acknowledge, Assign, Comment, Escalate, Hold, Resolve
from domain.shared_kernel.ticket_number_sequence import sequence_id
from infra.composition_root import Container, bootstrap
from infra.settings import Settings
from projections.audit import incident_timeline as timeline
from projections.incident import incident_queue as incidents
from tests.builders import BOT, FULL_LIFECYCLE, ctx, log_command

SHARED = (
    "number",
    "title",
    "caller",
    "channel",
    "service",
    "category",
    "subcategory",
    "impact",
    "urgency",
    "priority",
    "state",
    "hold_reason",
    "assignment_group",
    "assignee",
    "tier",
    "major",
    "reassignment_count",
    "reopen_count",
    "resolution_code",
    "satisfaction",
)


@pytest.fixture
def pg_container(tmp_path, pg_database) -> Iterator[Container]:
    container = bootstrap(
        Settings(
            data_dir=tmp_path,
            database_url=pg_database,
            read_database_url=pg_database,
            snapshot_interval=5,
        )
    )
    try:
        yield container
    finally:
        container.close()


def test_store_and_read_models_are_on_postgresql(pg_container, pg_database):
    assert pg_container.store_db.dialect == "postgresql"
    assert pg_container.read_db.dialect == "postgresql"
    from eventsourcing.postgres import PostgresApplicationRecorder

    assert isinstance(pg_container.desk.recorder, PostgresApplicationRecorder)
    incident = pg_container.desk.create(log_command(), ctx())
    with psycopg.connect(pg_database) as conn:
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }
        stored = conn.execute(
            "SELECT COUNT(*) FROM servicedesk_events WHERE originator_id = %s", (incident.id,)
        ).fetchone()[0]
    assert {
        "servicedesk_events",
        "rm_incidents",
        "rm_audit_trail",
        "projection_positions",
    } <= tables
    assert stored == incident.version == 1


def test_logs_and_changes_an_incident(pg_container):
    desk = pg_container.desk
    incident = desk.create(log_command(impact=1, urgency=1), ctx())
    desk.execute(incident.id, Assign(group="messaging", agent="dave"), ctx())
    desk.execute(incident.id, Acknowledge(), ctx())
    desk.execute(incident.id, Hold(reason="awaiting_vendor"), ctx(BOT))
    loaded = desk.get(incident.id)
    assert (loaded.number, loaded.priority, loaded.state, loaded.hold_reason, loaded.version) == (
        "INC0001001",
        "P1",
        "on_hold",
        "awaiting_vendor",
        4,
    )
    assert loaded.acknowledged_at is not None and loaded.acknowledged_at.tzinfo is not None


def test_stale_expected_version_is_rejected(pg_container):
    desk = pg_container.desk
    incident = desk.create(log_command(), ctx())
    desk.execute(incident.id, Assign(group="network"), ctx(expected_version=1))
    with pytest.raises(VersionConflict):
        desk.execute(incident.id, Acknowledge(), ctx(expected_version=1))
    assert desk.get(incident.id).version == 2


def test_racing_writers_lose_no_update(pg_container):
    desk = pg_container.desk
    incident = desk.create(log_command(), ctx())
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def writer(name: str) -> None:
        barrier.wait()
        try:
            for k in range(25):
                desk.execute(incident.id, Comment(text=f"{name}-{k}"), ctx())
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    events = list(desk.events.get(incident.id))
    texts = sorted(e.text for e in events if type(e).__name__ == "Commented")
    assert texts == sorted(f"w{n}-{k}" for n in range(2) for k in range(25))
    assert [e.originator_version for e in events] == list(range(1, 52))


def test_numbers_are_gap_free_and_unique_across_two_api_instances(
    pg_container, pg_database, tmp_path
):
    """Two processes' desks on one store log incidents at once: every number from INC0001001
    on is given exactly once, and each is an event of the incident sequence naming its
    ticket."""
    other = bootstrap(Settings(data_dir=tmp_path / "other", database_url=pg_database))
    numbers: dict[str, str] = {}
    lock = threading.Lock()

    def log_some(desk) -> None:
        for _ in range(10):
            incident = desk.create(log_command(), ctx())
            with lock:
                numbers[incident.number] = str(incident.id)

    try:
        threads = [
            threading.Thread(target=log_some, args=(desk,))
            for desk in (pg_container.desk, other.desk) * 2
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        other.close()
    assert sorted(numbers) == [f"INC{n:07d}" for n in range(1001, 1041)]
    issued = [
        (e.number, e.ticket_id)
        for e in pg_container.desk.events.get(sequence_id("incident"))
        if type(e).__name__ == "Issued"
    ]
    assert issued == sorted(numbers.items())


def test_read_models_match_after_catch_up(pg_container):
    desk = pg_container.desk
    first = desk.create(log_command(), ctx())
    for step, command in enumerate(FULL_LIFECYCLE):
        desk.execute(first.id, command, ctx(causation_id=f"pg-{step}"))
    second = desk.create(log_command(title="VPN flaps"), ctx())
    desk.execute(second.id, Assign(group="network"), ctx())
    desk.execute(second.id, Escalate(kind="hierarchical"), ctx())
    desk.execute(second.id, Resolve(code="fixed"), ctx())
    pg_container.feed.catch_up()

    with pg_container.read_db.transaction() as tx:
        rows = {n: incidents.get(tx, str(i.id)) for n, i in (("first", first), ("second", second))}
        total, page = incidents.search(tx, {"state": "resolved"}, limit=10, offset=0)
        entries = timeline.entries(tx, str(first.id))
    for name, incident in (("first", first), ("second", second)):
        aggregate = desk.get(incident.id)
        row = pg_container.vault.reveal(rows[name])  # the read model holds sealed tokens
        assert {k: row[k] for k in SHARED} == {k: getattr(aggregate, k) for k in SHARED}
        assert row["version"] == aggregate.version
    assert rows["second"]["major"] is True
    assert total == 1 and page[0]["number"] == second.number
    assert [e["version"] for e in entries] == list(range(1, len(FULL_LIFECYCLE) + 2))
    assert [e["causation_id"] for e in entries[1:]] == [
        f"pg-{s}" for s in range(len(FULL_LIFECYCLE))
    ]
    runner = pg_container.runner("incidents")
    assert runner.positions("notifications") == {0: desk.stored_events() + 1}


def _rows(container) -> list[tuple]:
    with container.read_db.transaction() as tx:
        return (
            tx.execute("SELECT * FROM rm_incidents ORDER BY number").fetchall()
            + tx.execute("SELECT * FROM rm_audit_trail ORDER BY aggregate_id, version").fetchall()
        )


def test_restart_reset_and_replay_on_postgresql(tmp_path, pg_database):
    settings = Settings(data_dir=tmp_path, database_url=pg_database)
    first = bootstrap(settings)
    try:
        incident = first.desk.create(log_command(), ctx())
        first.desk.execute(incident.id, Assign(group="network", agent="dave"), ctx())
        first.desk.execute(incident.id, Escalate(kind="hierarchical"), ctx())
        first.feed.catch_up()
        built = _rows(first)
    finally:
        first.close()
    second = bootstrap(settings)  # DDL, sequence and positions survive a restart
    try:
        assert second.desk.create(log_command(), ctx()).number == "INC0001002"
        second.feed.catch_up()
        # its incident row, and two audit lines: Logged, and its number Issued by the sequence
        assert len(_rows(second)) == len(built) + 3
        for runner in second.runners:
            runner.reset()
            assert runner.positions("notifications") == {}
        assert _rows(second) == []
        second.feed = type(second.feed)(
            second.desk.recorder, second.desk.publishing_mapper, second.runners
        )
        second.feed.catch_up()
        rebuilt = _rows(second)
        assert [r for r in rebuilt if r in built] == built
        with second.read_db.transaction() as tx:
            total, page = incidents.search(tx, {"assignment_group": "network"}, 10, 0)
            row = incidents.get(tx, str(incident.id))
        assert total == 1 and page[0]["major"] is True and row["version"] == 3
    finally:
        second.close()


def test_a_write_that_fails_on_its_connection_is_not_run_again(pg_container, monkeypatch):
    """Whether such a write was committed is unknown: running it again could store the
    command twice, so it is refused as `CommitOutcomeUnknown` (a 503), after one attempt."""
    from eventsourcing.persistence import OperationalError

    from infra.event_store import fail_fast_postgres

    assert isinstance(pg_container.desk.recorder, fail_fast_postgres.WriteOnceRecorder)
    attempts = []

    def connection_lost(*_args, **_kwargs):
        attempts.append(1)
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(fail_fast_postgres, "_insert_once", connection_lost)
    with pytest.raises(fail_fast_postgres.CommitOutcomeUnknown):
        pg_container.desk.create(log_command(), ctx())
    assert attempts == [1]
