"""The ServiceDesk on a real SQLite event store: numbering, concurrency, as_of, snapshots,
read models fed by the in-process feed."""

from __future__ import annotations

import threading
from datetime import timedelta
from uuid import uuid4

import orjson
import pytest
from eventsourcing.persistence import StoredEvent

from application.desk.errors import NotFound, VersionConflict
from domain.incident.commands import (
    Acknowledge,
    Assign,
    Cancel,
    Comment,
    Escalate,
    Hold,
    RecordSlaBreach,
    Reprioritise,
    Resolve,
    Resume,
)
from domain.incident.incident import Incident
from domain.shared_kernel.actor import Actor, ActorKind
from domain.shared_kernel.command_context import Context
from domain.shared_kernel.errors import IllegalTransition, InvalidValue
from infra.composition_root import bootstrap
from infra.settings import Settings
from projections.audit import incident_timeline as timeline
from projections.incident import incident_queue as incidents
from projections.incident import incident_record
from tests.builders import ALICE, BOT, FULL_LIFECYCLE, ctx, log_command

SHARED = (
    "number",
    "title",
    "description",
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
    "version",
)


def run_threads(target, count: int) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def body(n: int) -> None:
        barrier.wait()
        try:
            target(n)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=body, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


# -- numbering -------------------------------------------------------------------------------


def test_numbers_are_sequential_and_unique(desk):
    numbers = [desk.create(log_command(), ctx()).number for _ in range(5)]
    assert numbers == ["INC0001001", "INC0001002", "INC0001003", "INC0001004", "INC0001005"]


def test_numbers_are_unique_from_several_threads_at_once(desk):
    numbers: list[str] = []
    lock = threading.Lock()

    def log_some(_: int) -> None:
        for _ in range(10):
            number = desk.create(log_command(), ctx()).number
            with lock:
                numbers.append(number)

    assert run_threads(log_some, 4) == []
    assert sorted(numbers) == [f"INC{n:07d}" for n in range(1001, 1041)]


def test_numbering_continues_after_a_restart(tmp_path):
    first = bootstrap(Settings(data_dir=tmp_path))
    first.desk.create(log_command(), ctx())
    first.close()
    second = bootstrap(Settings(data_dir=tmp_path, number_prefixes={"incident": "IM"}))
    try:
        assert second.desk.create(log_command(), ctx()).number == "IM0001002"
    finally:
        second.close()


def test_a_refused_log_stores_nothing(desk):
    before = desk.stored_events()  # a fresh store holds the default SLA policy already
    with pytest.raises(InvalidValue):
        desk.create(log_command(impact=9), ctx())
    assert desk.stored_events() == before


# -- commands and optimistic concurrency ------------------------------------------------------


def test_execute_loads_runs_and_saves(desk):
    incident = desk.create(log_command(impact=1, urgency=1), ctx())
    result = desk.execute(incident.id, Assign(group="network", agent="dave"), ctx(BOT, "rule-1"))
    assert result.version == 2
    loaded = desk.get(incident.id)
    assert (loaded.assignment_group, loaded.assignee, loaded.priority) == ("network", "dave", "P1")
    last = list(desk.events.get(incident.id))[-1]
    assert last.by == BOT and last.causation_id == "rule-1"


def test_unknown_incident_is_not_found(desk):
    with pytest.raises(NotFound):
        desk.get(uuid4())
    with pytest.raises(NotFound):
        desk.execute(uuid4(), Acknowledge(), ctx())


def test_a_refused_command_stores_nothing(desk):
    incident = desk.create(log_command(), ctx())
    before = desk.stored_events()
    with pytest.raises(IllegalTransition):
        desk.execute(incident.id, Resume(), ctx())
    assert desk.get(incident.id).version == 1
    assert desk.stored_events() == before


def test_matching_expected_version_is_accepted(desk):
    incident = desk.create(log_command(), ctx())
    assert desk.execute(incident.id, Acknowledge(), ctx(expected_version=1)).version == 2


def test_stale_expected_version_conflicts_and_writes_nothing(desk):
    incident = desk.create(log_command(), ctx())
    desk.execute(incident.id, Assign(group="network"), ctx())
    before = desk.stored_events()
    with pytest.raises(VersionConflict, match="INC0001001 is at version 2, not 1"):
        desk.execute(incident.id, Acknowledge(), ctx(expected_version=1))
    loaded = desk.get(incident.id)
    assert (loaded.version, loaded.state) == (2, "new")
    assert desk.stored_events() == before


def record_sla_breach(desk, incident_id) -> None:
    """What the SLA scheduler does when a deadline falls due."""
    opened_at = desk.get(incident_id).opened_at
    breach = RecordSlaBreach("respond", "policy", 1, opened_at)
    desk.execute(incident_id, breach, Context(BOT, "sla"))


def test_an_sla_event_since_the_expected_version_does_not_conflict(desk):
    incident = desk.create(log_command(), ctx())
    desk.execute(incident.id, Assign(group="network"), ctx())
    record_sla_breach(desk, incident.id)  # version 3: the clock, not a person
    done = desk.execute(incident.id, Acknowledge(), ctx(expected_version=2))
    assert (done.version, done.state) == (4, "in_progress")


def test_a_change_by_someone_after_an_sla_event_still_conflicts(desk):
    incident = desk.create(log_command(), ctx())
    record_sla_breach(desk, incident.id)  # version 2
    desk.execute(incident.id, Assign(group="network"), ctx())  # version 3, by a person
    before = desk.stored_events()
    for seen in (1, 2):
        with pytest.raises(VersionConflict, match="is at version 3, not"):
            desk.execute(incident.id, Acknowledge(), ctx(expected_version=seen))
    with pytest.raises(VersionConflict, match="is at version 3, not 4"):  # not yet there
        desk.execute(incident.id, Acknowledge(), ctx(expected_version=4))
    assert desk.stored_events() == before


@pytest.mark.parametrize("writers, each", [(2, 25), (4, 15)])
def test_racing_writers_without_expected_version_lose_no_update(desk, writers, each):
    incident = desk.create(log_command(), ctx())

    def comment(n: int) -> None:
        for k in range(each):
            desk.execute(incident.id, Comment(text=f"w{n}-{k}"), ctx())

    errors = run_threads(comment, writers)
    assert errors == []
    events = list(desk.events.get(incident.id))
    assert sorted(e.text for e in events[1:]) == sorted(
        f"w{n}-{k}" for n in range(writers) for k in range(each)
    )
    assert [e.originator_version for e in events] == list(range(1, writers * each + 2))


def test_racing_writers_with_the_same_expected_version_exactly_one_wins(desk):
    incident = desk.create(log_command(), ctx())
    for _ in range(5):  # several rounds, so the race really happens at least once
        version = desk.get(incident.id).version
        outcomes: list[str] = []

        def write(n: int, version: int = version, outcomes: list[str] = outcomes) -> None:
            try:
                desk.execute(
                    incident.id, Comment(text=f"v{version}-w{n}"), ctx(expected_version=version)
                )
                outcomes.append("won")
            except VersionConflict:
                outcomes.append("conflict")

        assert run_threads(write, 4) == []
        assert sorted(outcomes) == ["conflict", "conflict", "conflict", "won"]
        assert desk.get(incident.id).version == version + 1


# -- as_of ------------------------------------------------------------------------------------


def test_as_of_gives_the_state_between_events(container):
    desk = container.desk
    incident = desk.create(log_command(), ctx())
    for command in (
        Assign(group="network"),
        Acknowledge(),
        Hold(reason="awaiting_vendor"),
        Resume(),
        Resolve(code="fixed"),
    ):
        desk.execute(incident.id, command, ctx())
    events = list(desk.events.get(incident.id))
    stamps = [e.timestamp for e in events]
    assert stamps == sorted(stamps)
    expected_states = ["new", "new", "in_progress", "on_hold", "in_progress", "resolved"]
    for event, state in zip(events, expected_states, strict=True):
        at_event = as_of(container, incident.id, event.timestamp)
        assert (at_event["version"], at_event["state"]) == (event.originator_version, state)
    for before, after, state in zip(events, events[1:], expected_states, strict=False):
        if after.timestamp > before.timestamp:
            middle = before.timestamp + (after.timestamp - before.timestamp) / 2
            between = as_of(container, incident.id, middle)
            assert (between["version"], between["state"]) == (before.originator_version, state)
    later = as_of(container, incident.id, stamps[-1] + timedelta(days=1))
    assert (later["version"], later["state"]) == (6, "resolved")


def as_of(container, incident_id, moment):
    """What `GET /v1/incidents/{id}?as_of=` folds: the stored events up to `moment`."""
    return incident_record.as_of(container.published_events(str(incident_id)), moment)


def test_as_of_before_creation_is_nothing(container):
    incident = container.desk.create(log_command(), ctx())
    before = incident.created_on - timedelta(microseconds=1)
    assert not incident_record.was_logged(as_of(container, incident.id, before))


# -- snapshots --------------------------------------------------------------------------------


def test_snapshots_every_n_events_give_the_same_state(tmp_path):
    container = bootstrap(Settings(data_dir=tmp_path, snapshot_interval=5))
    try:
        desk = container.desk
        incident = desk.create(log_command(), ctx())
        for command in FULL_LIFECYCLE[:-1]:
            desk.execute(incident.id, command, ctx())
        for k in range(7):
            desk.execute(incident.id, Comment(text=f"c{k}"), ctx())
        version = desk.get(incident.id).version
        assert version == len(FULL_LIFECYCLE) + 7
        desk.commits.flush()  # snapshots are taken after the commands were answered
        snapshots = list(desk.snapshots.get(incident.id))
        assert [s.originator_version for s in snapshots] == list(range(5, version + 1, 5))

        with_snapshots = desk.get(incident.id)
        replayed = None
        for event in desk.events.get(incident.id):
            replayed = event.mutate(replayed)
        assert vars(with_snapshots) == vars(replayed)
        for v in (4, 5, 6, 12):
            at = desk.get(incident.id, version=v)
            again = None
            for event in desk.events.get(incident.id, lte=v):
                again = event.mutate(again)
            assert vars(at) == vars(again)
    finally:
        container.close()


def test_snapshot_interval_defaults_to_50(container):
    assert container.desk.snapshotting_intervals[Incident] == 50


# -- upcasting through the store -------------------------------------------------------------


def test_an_incident_stored_with_a_v1_logged_event_loads(desk):
    incident = desk.create(log_command(channel="email"), ctx())
    logged = list(desk.events.get(incident.id))[0]
    state = orjson.loads(desk.mapper.to_stored_event(logged).state)
    del state["channel"], state["class_version"]
    state.pop("at", None)  # added by a later version than v1
    legacy_id = uuid4()
    desk.recorder.insert_events(
        [
            StoredEvent(
                originator_id=legacy_id,
                originator_version=1,
                topic=desk.mapper.to_stored_event(logged).topic,
                state=orjson.dumps(state),
            )
        ]
    )
    desk.execute(legacy_id, Acknowledge(), ctx())
    loaded = desk.get(legacy_id)
    assert (loaded.channel, loaded.state, loaded.version, loaded.number) == (
        "phone",
        "in_progress",
        2,
        incident.number,
    )


# -- read models --------------------------------------------------------------------------------


def test_read_model_after_catch_up_equals_the_aggregate(container, desk):
    ids = []
    first = desk.create(log_command(), ctx())
    for command in FULL_LIFECYCLE:
        desk.execute(first.id, command, ctx())
    ids.append(first.id)
    second = desk.create(log_command(title="VPN", impact=1, urgency=1), ctx())
    desk.execute(second.id, Hold(reason="awaiting_caller"), ctx())
    ids.append(second.id)
    third = desk.create(log_command(title="dup"), ctx())
    desk.execute(third.id, Cancel(reason="duplicate"), ctx())
    ids.append(third.id)
    container.feed.catch_up()
    with container.read_db.transaction() as tx:
        for incident_id in ids:
            aggregate = desk.get(incident_id)
            row = container.vault.reveal(incidents.get(tx, str(incident_id)))  # sealed there
            assert {k: row[k] for k in SHARED} == {k: getattr(aggregate, k) for k in SHARED}
            assert isinstance(row["major"], bool)
        assert incidents.get(tx, str(uuid4())) is None
    # catching up again changes nothing
    container.feed.catch_up()
    assert container.feed.step() == 0


def test_read_model_follows_later_changes(container, desk):
    incident = desk.create(log_command(), ctx())
    container.feed.catch_up()
    desk.execute(incident.id, Escalate(kind="hierarchical"), ctx())
    desk.execute(incident.id, Reprioritise(impact=1, urgency=1), ctx())
    container.feed.catch_up()
    with container.read_db.transaction() as tx:
        row = incidents.get(tx, str(incident.id))
    assert (row["major"], row["priority"], row["version"]) == (True, "P1", 3)


def test_catch_up_on_an_empty_store_returns(container, monkeypatch):
    # A guard turns an endless loop into a failure instead of hanging the whole run.
    feed, step, calls = container.feed, container.feed.step, []

    def guarded_step() -> int:
        calls.append(1)
        if len(calls) > 100:
            raise RuntimeError("feed.catch_up() keeps looping while the event store is empty")
        return step()

    monkeypatch.setattr(feed, "step", guarded_step)
    feed.catch_up()
    assert len(calls) <= 2


def _populate(desk):
    """Seven incidents with different states, priorities and groups."""
    made = []
    for n, (group, agent, impact) in enumerate(
        [
            ("network", "dave", 1),
            ("network", None, 2),
            ("messaging", "erin", 1),
            ("network", "dave", 3),
            ("messaging", None, 2),
            ("network", "erin", 1),
            (None, None, 3),
        ]
    ):
        incident = desk.create(log_command(title=f"t{n}", impact=impact, urgency=1), ctx())
        if group:
            desk.execute(incident.id, Assign(group=group, agent=agent), ctx())
        if n % 2 == 0:
            desk.execute(incident.id, Acknowledge(), ctx())
        made.append(desk.get(incident.id))
    return made


def test_search_filters_and_pages(container, desk):
    made = _populate(desk)
    container.feed.catch_up()

    def expect(predicate):
        chosen = [i for i in made if predicate(i)]
        return sorted((i.number for i in chosen), reverse=True)

    cases = [
        ({}, lambda i: True),
        ({"state": "in_progress"}, lambda i: i.state == "in_progress"),
        ({"priority": "P1"}, lambda i: i.priority == "P1"),
        ({"assignment_group": "network"}, lambda i: i.assignment_group == "network"),
        (  # an agent is recorded as their person token (the API looks that up)
            {"assignment_group": "network", "assignee": container.vault.person_token("dave")},
            lambda i: (i.assignment_group, i.assignee) == ("network", "dave"),
        ),
        ({"state": "new", "priority": "P2"}, lambda i: (i.state, i.priority) == ("new", "P2")),
        ({"number": "INC0001003"}, lambda i: i.number == "INC0001003"),
        ({"state": "closed"}, lambda i: False),
        ({"state": None, "title": "t1"}, lambda i: True),  # None and unknown keys are ignored
    ]
    with container.read_db.transaction() as tx:
        for filters, predicate in cases:
            wanted = expect(predicate)
            total, rows = incidents.search(tx, filters, limit=100, offset=0)
            assert (total, [r["number"] for r in rows]) == (len(wanted), wanted), filters
        total, page1 = incidents.search(tx, {}, limit=3, offset=0)
        _, page2 = incidents.search(tx, {}, limit=3, offset=3)
        _, page3 = incidents.search(tx, {}, limit=3, offset=6)
        _, beyond = incidents.search(tx, {}, limit=3, offset=9)
    assert total == 7
    assert [len(page1), len(page2), len(page3), len(beyond)] == [3, 3, 1, 0]
    numbers = [r["number"] for r in page1 + page2 + page3]
    assert numbers == [f"INC{n:07d}" for n in range(1007, 1000, -1)]  # newest first


def test_timeline_entries_in_version_order_with_actor_and_causation(container, desk):
    upstream = Actor("monitoring", ActorKind.UPSTREAM)
    incident = desk.create(log_command(), ctx(upstream, "alert-42"))
    steps = [
        (Assign(group="network", agent="dave"), BOT, "rule-1"),
        (Acknowledge(), Actor("dave"), "req-a"),
        (Comment(text="on it", public=True), Actor("dave"), "req-b"),
        (Hold(reason="awaiting_vendor"), ALICE, "req-c"),
    ]
    for command, actor, causation in steps:
        desk.execute(incident.id, command, ctx(actor, causation))
    container.feed.catch_up()
    with container.read_db.transaction() as tx:
        entries = container.vault.reveal(timeline.entries(tx, str(incident.id)))
    assert [e["version"] for e in entries] == [1, 2, 3, 4, 5]
    assert [e["event"] for e in entries] == [
        "Logged",
        "Assigned",
        "Acknowledged",
        "Commented",
        "PutOnHold",
    ]
    assert [e["actor"] for e in entries] == [
        {"id": "monitoring", "kind": "upstream"},
        {"id": "sla-bot", "kind": "automation"},
        {"id": "dave", "kind": "person"},
        {"id": "dave", "kind": "person"},
        {"id": "alice", "kind": "person"},
    ]
    assert [e["causation_id"] for e in entries] == ["alert-42", "rule-1", "req-a", "req-b", "req-c"]
    assert entries[1]["changes"] == [
        {"field": "assignment_group", "before": None, "after": "network"},
        {"field": "assignee", "before": None, "after": "dave"},
    ]
    assert entries[3]["changes"] == [] and entries[3]["details"] == {
        "text": "on it",
        "public": True,
    }
    assert {"field": "state", "before": "in_progress", "after": "on_hold"} in entries[4]["changes"]
    events = list(desk.events.get(incident.id))
    assert [e["occurred_at"] for e in entries] == [
        ev.timestamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ") for ev in events
    ]


def test_an_incident_stored_before_the_practice_folders_still_loads(desk):
    """Events stored under the aggregate's old module name resolve through the aliases."""
    incident = desk.create(log_command(), ctx())
    logged = desk.mapper.to_stored_event(list(desk.events.get(incident.id))[0])
    legacy_id = uuid4()
    desk.recorder.insert_events(
        [
            StoredEvent(
                originator_id=legacy_id,
                originator_version=1,
                topic="domain.incident:Incident.Logged",
                state=logged.state,
            )
        ]
    )
    desk.execute(legacy_id, Acknowledge(), ctx())
    assert (desk.get(legacy_id).number, desk.get(legacy_id).version) == (
        incident.number,
        2,
    )


def test_a_command_for_another_practice_is_not_found_even_from_the_saved_copy(container):
    """An SLA policy this process just saved is in its cache: an incident command on its id
    is still a NotFound, on the threaded path and on the event loop's."""
    import asyncio

    policy = container.sla_policies.create(
        {"name": "p", "targets": {"respond": {"P1": 60}}}, BOT, "policy"
    )
    with pytest.raises(NotFound, match="no incident"):
        container.desk.execute(policy.id, Comment(text="x"), ctx())
    with pytest.raises(NotFound, match="no incident"):
        asyncio.run(container.desk.execute_async(policy.id, Comment(text="x"), ctx()))


def test_a_rollback_puts_back_what_was_loaded_before_its_savepoint(desk):
    """A ticket created before a savepoint, then touched and refused after it: the rollback
    restores it as it was, so the commit saves it with the number it took (no gap)."""
    with desk.unit_of_work() as work:
        incident = work.create(log_command(), ctx())
        savepoint = work.savepoint()
        same = work.get(incident.id)
        work.run(same, Resolve(code="fixed"), ctx())
        with pytest.raises(IllegalTransition):
            work.run(same, Resolve(code="fixed"), ctx())
        work.rollback(savepoint)
        saved = work.commit()
    assert incident.id in {a.id for a in saved}
    stored = desk.get(incident.id)
    assert (stored.number, stored.state, stored.version) == (incident.number, "new", 1)


def test_a_unit_of_work_refuses_to_save_a_number_without_its_ticket(desk):
    with desk.unit_of_work() as work:
        incident = work.create(log_command(), ctx())
        work.loaded.pop(incident.id)
        with pytest.raises(RuntimeError, match="not being saved"):
            work.commit()
    assert desk.create(log_command(), ctx()).number == incident.number  # nothing was taken
