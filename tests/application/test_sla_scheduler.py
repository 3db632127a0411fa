"""The SLA scheduler against a real desk and read model: on time, once, across restarts."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from domain.shared_kernel.actor import Actor, ActorKind
from domain.shared_kernel.command_context import Context
from infra.composition_root import bootstrap
from infra.settings import Settings
from tests.builders import ctx, log_command
from tests.waiting import wait_until


def _settings(tmp_path, respond: str = "*=2") -> Settings:
    # 24x7 (no calendar), a 2 s respond target: warnings at 1, 1.5 and 1.8 s, breach at 2 s.
    return Settings(
        data_dir=tmp_path,
        sla_default_respond=respond,
        sla_default_resolve="*=3600",
        sla_scheduler_poll=0.05,
    )


@pytest.fixture
def container(tmp_path):
    c = bootstrap(_settings(tmp_path))
    yield c
    c.close()


def sla_events(desk, incident_id) -> list:
    return [
        e
        for e in desk.events.get(incident_id)
        if type(e).__name__ in ("SlaWarningReached", "SlaBreached")
    ]


def test_warnings_and_breach_are_recorded_within_a_second_of_the_due_time(container):
    desk = container.desk
    container.feed.start(0.02)
    scheduler = container.sla_scheduler().start()
    try:
        incident = desk.create(log_command(), ctx())
        wait_until(
            lambda: any(type(e).__name__ == "SlaBreached" for e in sla_events(desk, incident.id)),
            timeout=10,
        )
    finally:
        scheduler.stop()
    events = sla_events(desk, incident.id)
    start = incident.created_on
    kinds = [(type(e).__name__, getattr(e, "threshold", None), e.metric) for e in events]
    assert kinds == [
        ("SlaWarningReached", 50, "respond"),
        ("SlaWarningReached", 75, "respond"),
        ("SlaWarningReached", 90, "respond"),
        ("SlaBreached", None, "respond"),
    ]
    for event, fraction in zip(events, (0.5, 0.75, 0.9, 1.0), strict=False):
        due = start.timestamp() + 2 * fraction
        lateness = event.timestamp.timestamp() - due
        assert -0.01 <= lateness <= 1.0, (type(event).__name__, lateness)
        assert event.by.id == "sla-scheduler" and event.by.kind == ActorKind.AUTOMATION
        assert event.due_at.timestamp() == pytest.approx(start.timestamp() + 2, abs=0.001)
    assert events[-1].policy_version == 1
    assert max(scheduler.lateness) <= 1.0


def test_the_breach_reaches_the_clock_read_model_and_the_timeline(container):
    desk = container.desk
    incident = desk.create(log_command(), ctx())
    container.feed.catch_up()
    time.sleep(2.1)
    scheduler = container.sla_scheduler()
    scheduler.refresh()
    assert scheduler.fire_due() == 4
    container.feed.catch_up()
    from projections.sla.sla_queries import ticket_clocks

    with container.read_db.transaction(read_only=True) as tx:
        respond = next(
            c
            for c in ticket_clocks(tx, str(incident.id), datetime.now().astimezone())
            if c["metric"] == "respond"
        )
        timeline = [
            r[0]
            for r in tx.execute(
                "SELECT event_type FROM rm_audit_trail WHERE aggregate_id = %s ORDER BY version",
                (str(incident.id),),
            ).fetchall()
        ]
    assert respond["state"] == "breached" and respond["breach_recorded"]
    assert respond["warnings_recorded"] == [50, 75, 90]
    assert timeline.count("SlaWarningReached") == 3 and timeline.count("SlaBreached") == 1


def test_after_a_restart_what_fell_due_meanwhile_is_recorded_once(tmp_path):
    container = bootstrap(_settings(tmp_path, respond="*=1"))
    try:
        desk = container.desk
        incidents = [desk.create(log_command(), ctx()) for _ in range(3)]
        container.feed.catch_up()
        time.sleep(1.2)  # every deadline passes while no scheduler runs
        first = container.sla_scheduler()
        first.refresh()
        assert first.fire_due() == 3 * 4
        # A second scheduler that starts before the read model caught up sees the same alarms
        # pending; the incidents refuse them.
        second = container.sla_scheduler()
        second.refresh()
        assert second.fire_due() == 0
        container.feed.catch_up()
        third = container.sla_scheduler()
        third.refresh()
        assert third.next_due() is not None  # the resolve clock's alarms, an hour away
        assert third.fire_due() == 0
    finally:
        container.close()
    reopened = bootstrap(_settings(tmp_path, respond="*=1"))
    try:
        scheduler = reopened.sla_scheduler()
        scheduler.refresh()
        assert scheduler.fire_due() == 0
        for incident in incidents:
            counts = Counter(
                (type(e).__name__, getattr(e, "threshold", None))
                for e in sla_events(reopened.desk, incident.id)
            )
            assert counts == {
                ("SlaWarningReached", 50): 1,
                ("SlaWarningReached", 75): 1,
                ("SlaWarningReached", 90): 1,
                ("SlaBreached", None): 1,
            }
    finally:
        reopened.close()


def test_an_acknowledged_ticket_gets_no_respond_alarm(container):
    desk = container.desk
    incident = desk.create(log_command(), ctx())
    from domain.incident.commands import Acknowledge

    desk.execute(incident.id, Acknowledge(), ctx())
    container.feed.catch_up()
    time.sleep(2.1)
    scheduler = container.sla_scheduler()
    scheduler.refresh()
    assert scheduler.fire_due() == 0
    assert sla_events(desk, incident.id) == []


def test_the_scheduler_learns_changed_rows_only(container):
    desk = container.desk
    scheduler = container.sla_scheduler()
    desk.create(log_command(), ctx())
    container.feed.catch_up()
    assert scheduler.refresh() == 2  # first load: every running clock with alarms
    assert scheduler.refresh() == 0  # nothing changed since
    desk.create(log_command(), ctx())
    container.feed.catch_up()
    assert scheduler.refresh() == 2  # the new incident's two clocks only


def test_imported_history_gets_its_notices_on_its_own_time_line(tmp_path):
    """No notice of a moment the history has not reached; it runs on from its latest event."""
    container = bootstrap(
        Settings(data_dir=tmp_path, sla_default_respond="*=3600", sla_default_resolve="*=86400")
    )
    try:
        desk, opened = container.desk, datetime(2016, 3, 1, 8, 0, tzinfo=UTC)
        incident = desk.create(log_command(), _imported(opened))
        recorded = time.time()
        container.feed.catch_up()
        scheduler = container.sla_scheduler()
        scheduler.refresh()
        scheduler.clock = lambda: recorded + 10  # the wall clock is years past every deadline
        assert scheduler.fire_due() == 0
        scheduler.clock = lambda: recorded + 1801  # its own time passed 08:30, the 50 % mark
        assert scheduler.fire_due() == 1
        from domain.incident.commands import Acknowledge

        desk.execute(incident.id, Acknowledge(), _imported(opened + timedelta(minutes=40)))
        container.feed.catch_up()
        scheduler.refresh()
        scheduler.clock = lambda: recorded + 2 * 86400  # left open: resolve falls due in turn
        assert scheduler.fire_due() == 4
        container.feed.catch_up()
        from projections.sla.sla_queries import ticket_clocks

        with container.read_db.transaction(read_only=True) as tx:
            respond = next(
                c for c in ticket_clocks(tx, str(incident.id), opened) if c["metric"] == "respond"
            )
        notices = [
            (type(e).__name__, e.metric, getattr(e, "threshold", None))
            for e in sla_events(desk, incident.id)
        ]
    finally:
        container.close()
    assert notices == [
        ("SlaWarningReached", "respond", 50),
        ("SlaWarningReached", "resolve", 50),
        ("SlaWarningReached", "resolve", 75),
        ("SlaWarningReached", "resolve", 90),
        ("SlaBreached", "resolve", None),
    ]
    assert respond["state"] == "met" and respond["elapsed_seconds"] == 40 * 60


def _imported(at: datetime) -> Context:
    return Context(
        by=Actor("servicenow", ActorKind.UPSTREAM), causation_id="import", occurred_at=at
    )
