"""Every legal transition of an incident and what it does to the incident's state."""

from __future__ import annotations

from datetime import datetime

import pytest

from domain.incident.commands import (
    Acknowledge,
    Assign,
    Cancel,
    Close,
    Comment,
    Escalate,
    Hold,
    LogIncident,
    Recategorise,
    Reopen,
    Reprioritise,
    Resolve,
    Resume,
)
from domain.shared_kernel.actor import Actor
from domain.shared_kernel.errors import IllegalTransition
from tests.builders import ALICE, RULES, ctx, drive, incident_through, new_incident


def last_event(incident):
    return incident.pending_events[-1]


def test_logging_opens_a_new_unassigned_incident_at_l1():
    incident = new_incident(impact=1, urgency=2)
    assert (incident.number, incident.state, incident.priority, incident.tier) == (
        "INC0001001",
        "new",
        "P2",
        "L1",
    )
    assert incident.assignment_group is None and incident.assignee is None
    assert incident.major is False
    assert incident.reassignment_count == incident.reopen_count == 0
    assert incident.version == 1
    logged = last_event(incident)
    assert type(logged).__name__ == "Logged"
    assert logged.by == ALICE and logged.causation_id == "req-log"


def test_log_records_the_channel_and_defaults_to_the_portal():
    assert new_incident(channel="monitoring").channel == "monitoring"
    command = LogIncident(title="Printer jam", caller="bob", impact=3, urgency=3)
    assert command.run("INC0000001", ctx(), RULES).channel == "portal"


def test_acknowledge_moves_new_to_in_progress_and_stamps_the_time():
    incident = incident_through([Acknowledge()])
    event = last_event(incident)
    assert incident.state == "in_progress"
    assert incident.acknowledged_at == event.timestamp
    assert isinstance(incident.acknowledged_at, datetime)
    assert incident.version == 2


@pytest.mark.parametrize(
    "reason", ["awaiting_caller", "awaiting_vendor", "awaiting_problem", "awaiting_change"]
)
def test_hold_records_the_reason_and_resume_clears_it(reason):
    incident = incident_through([Acknowledge(), Hold(reason=reason, note="n")])
    assert (incident.state, incident.hold_reason) == ("on_hold", reason)
    assert last_event(incident).note == "n"
    drive(incident, [Resume()])
    assert (incident.state, incident.hold_reason) == ("in_progress", None)


def test_a_new_incident_can_be_held_and_resumes_to_in_progress():
    incident = incident_through([Hold(reason="awaiting_caller")])
    assert incident.state == "on_hold"
    drive(incident, [Resume()])
    assert incident.state == "in_progress"
    assert incident.acknowledged_at is None


def test_resolve_records_code_notes_and_time():
    incident = incident_through([Acknowledge(), Resolve(code="fixed", notes="rebooted")])
    assert incident.state == "resolved"
    assert (incident.resolution_code, incident.resolution_notes) == ("fixed", "rebooted")
    assert incident.resolved_at == last_event(incident).timestamp


def test_resolving_from_hold_clears_the_hold_reason():
    incident = incident_through([Hold(reason="awaiting_vendor"), Resolve(code="fixed")])
    assert (incident.state, incident.hold_reason) == ("resolved", None)


def test_reopen_counts_reopens_and_clears_the_resolution():
    incident = incident_through([Acknowledge(), Resolve(code="fixed"), Reopen(reason="back")])
    assert (incident.state, incident.reopen_count) == ("in_progress", 1)
    assert incident.resolution_code is None and incident.resolution_notes is None
    assert incident.resolved_at is None
    drive(incident, [Resolve(code="fixed"), Reopen(), Resolve(code="really fixed")])
    assert (incident.state, incident.reopen_count, incident.resolution_code) == (
        "resolved",
        2,
        "really fixed",
    )


@pytest.mark.parametrize("score", [1, 2, 3, 4, 5, None])
def test_close_a_resolved_incident_with_satisfaction(score):
    incident = incident_through([Resolve(code="fixed"), Close(satisfaction=score, comment="ok")])
    assert (incident.state, incident.satisfaction) == ("closed", score)
    assert incident.closed_at == last_event(incident).timestamp
    assert last_event(incident).comment == "ok"


@pytest.mark.parametrize("before", [[], [Acknowledge()], [Hold(reason="awaiting_caller")]])
def test_cancel_any_open_incident(before):
    incident = incident_through([*before, Cancel(reason="duplicate")])
    assert (incident.state, incident.hold_reason) == ("cancelled", None)
    assert last_event(incident).reason == "duplicate"


def test_comments_do_not_change_state_and_are_allowed_after_closure_and_cancel():
    closed = incident_through([Resolve(code="x"), Close()])
    drive(closed, [Comment(text="follow-up", public=True)])
    assert closed.state == "closed" and closed.version == 4
    assert last_event(closed).public is True
    cancelled = incident_through([Cancel()])
    drive(cancelled, [Comment(text="why cancelled")])
    assert cancelled.state == "cancelled" and cancelled.version == 3
    assert last_event(cancelled).public is False


def test_first_assignment_is_not_a_reassignment():
    incident = incident_through([Assign(group="service-desk", agent="carol")])
    assert (incident.assignment_group, incident.assignee) == ("service-desk", "carol")
    assert incident.reassignment_count == 0
    assert last_event(incident).reassignment is False


def test_a_change_of_group_is_a_reassignment():
    incident = incident_through(
        [
            Assign(group="service-desk"),
            Assign(group="network", agent="x"),
            Assign(group="service-desk"),
        ]
    )
    assert incident.reassignment_count == 2
    assert (incident.assignment_group, incident.assignee) == ("service-desk", None)
    assert last_event(incident).reassignment is True


def test_a_change_of_agent_within_the_group_is_not_a_reassignment():
    incident = incident_through(
        [
            Assign(group="network"),
            Assign(group="network", agent="dave"),
            Assign(group="network", agent="erin"),
        ]
    )
    assert (incident.assignment_group, incident.assignee) == ("network", "erin")
    assert incident.reassignment_count == 0


def test_functional_escalation_climbs_l1_l2_l3_then_fails_at_l3():
    incident = incident_through([Assign(group="service-desk", agent="carol")])
    drive(incident, [Escalate(kind="functional", group="messaging")])
    assert (incident.tier, incident.assignment_group, incident.assignee) == (
        "L2",
        "messaging",
        None,
    )
    assert incident.reassignment_count == 1
    drive(incident, [Escalate(kind="functional")])  # stays with its group
    assert (incident.tier, incident.assignment_group, incident.reassignment_count) == (
        "L3",
        "messaging",
        1,
    )
    version = incident.version
    with pytest.raises(IllegalTransition, match="INC0001001 is already at the top tier L3"):
        drive(incident, [Escalate(kind="functional", group="vendor")])
    assert incident.version == version and incident.tier == "L3"


def test_functional_escalation_of_an_unassigned_incident_is_not_a_reassignment():
    incident = incident_through([Escalate(kind="functional", group="network")])
    assert (incident.tier, incident.assignment_group, incident.reassignment_count) == (
        "L2",
        "network",
        0,
    )


def test_hierarchical_escalation_sets_major_once():
    incident = incident_through(
        [Assign(group="network", agent="dave"), Escalate(kind="hierarchical", reason="CEO")]
    )
    assert incident.major is True
    assert (incident.tier, incident.assignment_group, incident.assignee) == (
        "L1",
        "network",
        "dave",
    )
    assert last_event(incident).reason == "CEO"
    with pytest.raises(IllegalTransition, match="INC0001001 is already a major incident"):
        drive(incident, [Escalate(kind="hierarchical")])
    assert incident.version == 3


def test_reprioritise_and_recategorise_update_the_incident():
    incident = incident_through(
        [
            Reprioritise(impact=1, urgency=1, reason="outage"),
            Recategorise(category="network", subcategory="vpn"),
        ]
    )
    assert (incident.impact, incident.urgency, incident.priority) == (1, 1, "P1")
    assert (incident.category, incident.subcategory, incident.service) == ("network", "vpn", "mail")
    drive(incident, [Recategorise(category="network", subcategory="vpn", service="remote-access")])
    assert incident.service == "remote-access"


def test_every_event_records_who_acted_and_why():
    bot = Actor("rule-7", kind="automation")
    incident = new_incident()
    Assign(group="network").run(incident, ctx(bot, "rule-run-1"), RULES)
    event = last_event(incident)
    assert event.by == bot and event.causation_id == "rule-run-1"
    assert incident.modified_on == event.timestamp
