"""The incident.snapshot mapper, in memory: what each change between snapshots becomes."""

from __future__ import annotations

from datetime import datetime, timezone
from itertools import count
from typing import Any
from uuid import UUID

import pytest

from application.inbound.inbound_message import CloudEvent
from application.inbound.source_record_mapper import SourceRecordHandler
from tests.builders import RULES

SOURCE = "servicenow://test"


class FakeWork:
    """The processor's unit of work, on a dict."""

    def __init__(self) -> None:
        self.store: dict[UUID, Any] = {}
        self.numbers = count(1001)

    def get(self, aggregate_id):
        return self.store.get(aggregate_id)

    def add(self, aggregate):
        self.store[aggregate.id] = aggregate

    def create(self, command, ctx):
        aggregate = command.run(f"INC{next(self.numbers):07d}", ctx, RULES)
        self.add(aggregate)
        return aggregate

    def run(self, aggregate, command, ctx):
        command.run(aggregate, ctx, RULES)
        return aggregate


def snap(mod: int, state: str = "new", at: str = "2016-03-01T10:00:00", **fields) -> dict:
    data = {
        "ref": "INC0000045",
        "mod_count": mod,
        "updated_at": at,
        "updated_by": f"user {mod}",
        "state": state,
        "hold_reason": None,
        "opened_at": "2016-03-01T09:00:00",
        "opened_by": "opener",
        "caller": "Caller 1",
        "category": "Category 1",
        "subcategory": "Sub 1",
        "service": None,
        "impact": 2,
        "urgency": 2,
        "priority": "P3",
        "assignment_group": None,
        "assignee": None,
        "reopen_count": 0,
        "reassignment_count": 0,
        "resolution_code": "code 6",
        "resolved_by": None,
        "resolved_at": None,
        "closed_at": None,
        "made_sla": True,
        "title": None,
    }
    data.update(fields)
    return data


class Ticket:
    def __init__(self) -> None:
        self.work = FakeWork()
        self.handler = SourceRecordHandler(timezone.utc)
        self.incident = None
        self.effects: list[str] = []

    def feed(self, *snapshots: dict) -> Ticket:
        for n, data in enumerate(snapshots):
            event = CloudEvent(
                id=f"e{data['mod_count']}-{n}",
                source=SOURCE,
                type="incident.snapshot",
                time=datetime.now(timezone.utc),
                subject=data["ref"],
                data=data,
            )
            effect, incident, ticket = self.handler.handle(self.work, event)
            self.effects.append(effect)
            self.incident = incident or self.incident
            self.ticket = ticket
        return self

    def names(self) -> list[str]:
        return [type(e).__name__ for e in self.incident.collect_events()]


def events(*snapshots: dict) -> tuple[Ticket, list]:
    ticket = Ticket().feed(*snapshots)
    return ticket, list(ticket.incident.collect_events())


def test_the_first_snapshot_logs_the_incident_at_its_opening_by_its_opener():
    ticket, evs = events(snap(0, assignment_group="G1", at="2016-03-01T09:05:00"))
    logged, assigned = evs
    assert type(logged).__name__ == "Logged"
    assert logged.at == datetime(2016, 3, 1, 9, 0, tzinfo=timezone.utc)
    assert logged.by.id == "opener" and str(logged.by.kind) == "person"
    assert (logged.source, logged.external_ref) == (SOURCE, "INC0000045")
    assert logged.causation_id == f"ce:{SOURCE}#e0-0"
    assert assigned.reassignment is False and assigned.by.id == "user 0"
    assert assigned.at == datetime(2016, 3, 1, 9, 5, tzinfo=timezone.utc)
    assert ticket.effects == ["opened"]


def test_source_times_without_offset_are_in_the_configured_timezone():
    from zoneinfo import ZoneInfo

    ticket = Ticket()
    ticket.handler = SourceRecordHandler(ZoneInfo("Europe/Paris"))
    ticket.feed(snap(0))
    assert ticket.incident.opened_at == datetime(2016, 3, 1, 8, 0, tzinfo=timezone.utc)


def test_a_normal_life_new_active_hold_resolved_closed():
    ticket, evs = events(
        snap(0, assignment_group="G1"),
        snap(1, "in_progress", at="2016-03-01T11:00:00"),
        snap(2, "on_hold", hold_reason="awaiting_vendor", at="2016-03-01T12:00:00"),
        snap(3, "on_hold", hold_reason="awaiting_evidence", at="2016-03-01T12:30:00"),
        snap(4, "resolved", at="2016-03-02T10:00:00"),
        snap(5, "resolved", at="2016-03-02T15:00:00"),
        snap(6, "closed", at="2016-03-07T10:00:00"),
    )
    assert [type(e).__name__ for e in evs] == [
        "Logged",
        "Assigned",
        "Acknowledged",
        "PutOnHold",
        "Resumed",
        "PutOnHold",
        "Resolved",
        "Closed",
    ]
    incident = ticket.incident
    assert incident.state == "closed" and incident.hold_reason is None
    # Resolved at the FIRST resolved snapshot, not at a later one.
    assert incident.resolved_at == datetime(2016, 3, 2, 10, 0, tzinfo=timezone.utc)
    assert incident.acknowledged_at == datetime(2016, 3, 1, 11, 0, tzinfo=timezone.utc)


def test_a_first_snapshot_already_resolved_resolves_at_its_update_time():
    ticket, evs = events(snap(3, "resolved", at="2016-03-01T15:00:00"))
    assert [type(e).__name__ for e in evs] == ["Logged", "Resolved"]
    assert evs[1].at == datetime(2016, 3, 1, 15, tzinfo=timezone.utc)
    assert evs[1].code == "code 6"


def test_counters_at_the_first_snapshot_are_a_baseline_not_changes():
    ticket, evs = events(
        snap(0, "in_progress", reopen_count=2, reassignment_count=3, assignment_group="G1")
    )
    assert ticket.incident.reopen_count == 0 and ticket.incident.reassignment_count == 0


def test_only_group_changes_between_non_null_groups_are_reassignments():
    ticket, evs = events(
        snap(0),  # no group
        snap(1, assignment_group="G1"),  # null -> G1: assignment
        snap(2, assignment_group="G1", assignee="ann"),  # agent only: not a reassignment
        snap(3, assignment_group="G2"),  # G1 -> G2: reassignment
        snap(4, assignment_group=None),  # G2 -> null: nothing happens here
        snap(5, assignment_group="G3"),  # null -> G3: not a reassignment
        snap(6, assignment_group="G3"),
        snap(7, assignment_group="G1", reassignment_count=99),
    )  # G3 -> G1: reassignment
    assigned = [e for e in evs if type(e).__name__ == "Assigned"]
    assert [(e.group, e.agent, e.reassignment) for e in assigned] == [
        ("G1", None, False),
        ("G1", "ann", False),
        ("G2", None, True),
        ("G3", None, False),
        ("G1", None, True),
    ]
    assert ticket.incident.reassignment_count == 2  # counters in the data are not trusted


def test_a_group_change_while_resolved_still_counts():
    ticket, evs = events(
        snap(0, "resolved", assignment_group="G1"), snap(1, "closed", assignment_group="G2")
    )
    assert ticket.incident.reassignment_count == 1 and ticket.incident.state == "closed"
    assert ticket.incident.assignment_group == "G2"


def test_each_unit_of_rise_of_reopen_count_is_one_reopen():
    ticket, evs = events(
        snap(0, "resolved", at="2016-03-01T10:00:00"),
        snap(1, "in_progress", reopen_count=1, at="2016-03-01T11:00:00"),
        snap(2, "resolved", reopen_count=1, at="2016-03-01T12:00:00"),
        snap(3, "resolved", reopen_count=3, at="2016-03-01T13:00:00"),
    )
    names = [type(e).__name__ for e in evs]
    assert names == [
        "Logged",
        "Resolved",
        "Reopened",
        "Resolved",
        "Reopened",
        "Resolved",
        "Reopened",
        "Resolved",
    ]
    assert ticket.incident.reopen_count == 3 and ticket.incident.state == "resolved"
    # the synthesized resolution between the two reopens of one snapshot says so
    assert evs[5].notes.startswith("synthesized")


def test_a_rise_while_open_resolves_first_to_stay_legal():
    ticket, evs = events(snap(0, "in_progress"), snap(1, "in_progress", reopen_count=1))
    assert [type(e).__name__ for e in evs][-2:] == ["Resolved", "Reopened"]
    assert ticket.incident.reopen_count == 1 and ticket.incident.state == "in_progress"


def test_a_closed_ticket_reopened_at_the_source_is_reopened_here():
    ticket, evs = events(
        snap(0, "resolved"),
        snap(1, "closed"),
        snap(2, "in_progress", reopen_count=1, at="2016-03-09T10:00:00"),
        snap(3, "resolved", reopen_count=1, at="2016-03-10T10:00:00"),
        snap(4, "closed", reopen_count=1, at="2016-03-15T10:00:00"),
    )
    assert [type(e).__name__ for e in evs] == [
        "Logged",
        "Resolved",
        "Closed",
        "Reopened",
        "Resolved",
        "Closed",
    ]
    incident = ticket.incident
    assert incident.reopen_count == 1 and incident.state == "closed"
    assert incident.resolved_at == datetime(2016, 3, 10, 10, tzinfo=timezone.utc)


def test_closed_without_resolution_is_resolved_and_closed_at_once():
    ticket, evs = events(snap(0, "new"), snap(1, "closed", at="2016-03-05T12:00:00"))
    assert [type(e).__name__ for e in evs] == ["Logged", "Resolved", "Closed"]
    assert evs[1].at == evs[2].at == datetime(2016, 3, 5, 12, tzinfo=timezone.utc)
    assert evs[1].notes.startswith("synthesized")


def test_resolved_back_to_active_without_a_rise_reopens_to_keep_the_state():
    ticket, evs = events(snap(0, "resolved"), snap(1, "in_progress"))
    assert ticket.incident.state == "in_progress"
    assert [type(e).__name__ for e in evs][-1] == "Reopened"


def test_back_to_new_is_not_possible_so_the_incident_stays_in_progress():
    ticket, evs = events(snap(0, "in_progress"), snap(1, "new"))
    assert ticket.incident.state == "in_progress"
    ticket2, _ = events(snap(0, "on_hold", hold_reason="awaiting_caller"), snap(1, "new"))
    assert ticket2.incident.state == "in_progress"


def test_on_hold_without_a_reason_defaults_to_awaiting_caller():
    ticket, _ = events(snap(0, "on_hold"))
    assert ticket.incident.hold_reason == "awaiting_caller"


def test_priority_and_category_changes():
    ticket, evs = events(
        snap(0, "in_progress"),
        snap(1, "in_progress", impact=1, urgency=1, category="Category 2"),
        snap(2, "in_progress", impact=None, urgency=None, category=None),
    )
    names = [type(e).__name__ for e in evs]
    assert names == ["Logged", "Acknowledged", "Reprioritised", "Recategorised"]
    assert ticket.incident.priority == "P1" and ticket.incident.category == "Category 2"


def test_changes_on_a_closed_incident_become_work_notes():
    ticket, evs = events(snap(0, "closed"), snap(1, "closed", impact=1))
    assert type(evs[-1]).__name__ == "Commented" and evs[-1].public is False
    assert ticket.incident.state == "closed"


def test_a_cancelled_ticket_is_cancelled():
    ticket, _ = events(snap(0, "new"), snap(1, "cancelled"))
    assert ticket.incident.state == "cancelled"


def test_stale_snapshots_are_ignored_and_counted_on_the_ticket():
    ticket = Ticket().feed(snap(0), snap(2, "in_progress"), snap(1, "resolved"), snap(2, "closed"))
    assert ticket.effects == ["opened", "applied", "stale", "stale"]
    assert ticket.incident.state == "in_progress"
    assert ticket.ticket.stale == 2 and ticket.ticket.mod_count == 2
    assert ticket.ticket.snapshot["state"] == "in_progress"


@pytest.mark.parametrize(
    "target", ["new", "in_progress", "on_hold", "resolved", "closed", "cancelled"]
)
@pytest.mark.parametrize(
    "start", ["new", "in_progress", "on_hold", "resolved", "closed", "cancelled"]
)
def test_every_state_to_every_state_is_legal_and_lands_where_it_can(start, target):
    ticket = Ticket().feed(snap(0, start), snap(1, target))
    state = ticket.incident.state
    if start in ("closed", "cancelled"):
        assert state == start  # terminal here; only a rise of reopen_count brings it back
    elif target == "new":
        assert state == ("new" if start == "new" else "in_progress")
    else:
        assert state == target
