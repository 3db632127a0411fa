"""The SlaPolicy aggregate (versions), its specification and the matching rule."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest

from domain.incident.incident import Incident
from domain.shared_kernel.errors import IllegalTransition, InvalidValue
from domain.sla.sla_policy import (
    SlaPolicy,
    choose,
    matches,
    normalise_spec,
    pause_reasons,
    specificity,
    target,
)
from tests.builders import BOT, mapper, new_incident, replay
from tests.unit.test_sla_support import ALICE, H, spec

NOW = datetime(2026, 3, 2, tzinfo=UTC)


def test_each_edit_is_a_new_version_and_old_versions_stay_as_they_were():
    policy = SlaPolicy.create(spec(), ALICE, "req-1")
    policy.amend({"rank": 4}, ALICE, "req-2")
    policy.revise(spec(name="Renamed"), ALICE, "req-3")
    events = policy.collect_events()
    assert [type(e).__name__ for e in events] == ["Created", "Revised", "Revised"]
    assert [e.originator_version for e in events] == [1, 2, 3] and policy.version == 3
    assert [e.causation_id for e in events] == ["req-1", "req-2", "req-3"]
    assert events[0].spec["rank"] == 0 and events[1].spec["rank"] == 4
    assert events[2].spec["name"] == "Renamed" and events[2].spec["rank"] == 0
    assert replay(events[:2]).spec == events[1].spec


def test_an_edit_that_changes_nothing_is_refused():
    policy = SlaPolicy.create(spec(), ALICE, "req-1")
    with pytest.raises(IllegalTransition):
        policy.amend({"rank": 0}, ALICE, "req-2")
    with pytest.raises(InvalidValue):
        policy.amend({"colour": "red"}, ALICE, "req-2")


def test_a_deterministic_id_can_be_given():
    policy_id = UUID("12345678-1234-5678-1234-567812345678")
    assert SlaPolicy.create(spec(), ALICE, "boot", policy_id=policy_id).id == policy_id


def test_policy_events_round_trip_through_the_transcoder():
    policy = SlaPolicy.create(
        spec(calendar={"timezone": "Europe/Paris", "week": {"mon": [["09:00", "17:00"]]}}),
        ALICE,
        "req-1",
    )
    policy.amend({"warnings": [80]}, ALICE, "req-2")
    m = mapper()
    for event in policy.collect_events():
        copy = m.to_domain_event(m.to_stored_event(event))
        assert copy.__dict__ == event.__dict__


def test_normalised_specs_have_defaults_and_compare_equal():
    one = normalise_spec(
        {
            "name": " A ",
            "targets": {"resolve": {"P2": 3600.0, "P1": 60}},
            "conditions": {"service": ["b", "a", "a"], "category": []},
        }
    )
    assert one["name"] == "A" and one["targets"]["resolve"] == {"P1": 60, "P2": 3600}
    assert one["conditions"] == {"service": ["a", "b"]}
    assert one["pause"] == {
        "respond": [],
        "resolve": ["awaiting_caller", "awaiting_vendor"],
        "ola": ["awaiting_caller", "awaiting_vendor"],
    }
    assert one["warnings"] == [50, 75, 90] and one["calendar"] is None and one["active"]
    assert normalise_spec(one) == one


@pytest.mark.parametrize(
    "bad",
    [
        {"targets": {"resolve": {"P1": 60}}},  # no name
        {"name": "x"},  # no target
        {"name": "x", "targets": {"resolve": {"P5": 60}}},
        {"name": "x", "targets": {"resolve": {"P1": -1}}},
        {"name": "x", "targets": {"fix": {"P1": 60}}},
        {"name": "x", "targets": {"resolve": {"P1": 60}}, "warnings": [120]},
        {"name": "x", "targets": {"resolve": {"P1": 60}}, "pause": {"resolve": ["coffee"]}},
        {"name": "x", "targets": {"resolve": {"P1": 60}}, "conditions": {"colour": ["red"]}},
        {
            "name": "x",
            "targets": {"resolve": {"P1": 60}},
            "calendar": {"timezone": "Nowhere/X", "week": {}},
        },
    ],
)
def test_invalid_specs_are_refused(bad):
    with pytest.raises(InvalidValue):
        normalise_spec(bad)


def test_targets_fall_back_to_the_star_key_and_ola_is_per_group():
    s = spec(targets={"resolve": {"P1": H, "*": 8 * H}}, ola={"network": {"*": 2 * H}})
    assert target(s, "resolve", "P1") == H and target(s, "resolve", "P4") == 8 * H
    assert target(s, "respond", "P1") is None
    assert target(s, "ola:network", "P3") == 2 * H and target(s, "ola:desk", "P3") is None
    assert pause_reasons(s, "ola:network") == ["awaiting_caller", "awaiting_vendor"]
    assert pause_reasons(s, "respond") == []


TICKET = {
    "ticket_type": "incident",
    "priority": "P2",
    "service": "mail",
    "category": "software",
    "organisation": None,
}


def test_matching_needs_every_condition_and_an_active_policy():
    assert matches(spec(), TICKET)
    assert matches(spec(conditions={"service": ["mail", "web"], "priority": ["P2"]}), TICKET)
    assert not matches(spec(conditions={"service": ["mail"], "priority": ["P1"]}), TICKET)
    assert not matches(spec(conditions={"organisation": ["acme"]}), TICKET)  # unknown org
    assert not matches(spec(active=False), TICKET)
    assert specificity(spec(conditions={"service": ["mail"], "priority": ["P2"]})) == 2


def test_most_specific_then_highest_rank_then_oldest_then_smallest_id():
    general = ("g", "2026-01-01", spec())
    mail = ("m", "2026-01-03", spec(conditions={"service": ["mail"]}))
    mail_ranked = ("r", "2026-01-04", spec(conditions={"category": ["software"]}, rank=2))
    mail_old = ("o", "2026-01-02", spec(conditions={"service": ["mail"]}))
    both = (
        "b",
        "2026-01-09",
        spec(conditions={"service": ["mail"], "category": ["software"]}, rank=-5),
    )
    assert choose([general, mail, mail_ranked, mail_old, both], TICKET) == "b"
    assert choose([general, mail, mail_ranked, mail_old], TICKET) == "r"
    assert choose([general, mail, mail_old], TICKET) == "o"
    assert choose([general, ("a", "2026-01-01", spec())], TICKET) == "a"
    assert choose([mail], {**TICKET, "service": "web"}) is None


def test_sla_events_are_recorded_once_and_only_while_the_clock_can_run():
    incident = new_incident()
    incident.record_sla_warning("resolve", 50, "p", 1, NOW, BOT, "c")
    incident.record_sla_warning("resolve", 75, "p", 1, NOW, BOT, "c")
    with pytest.raises(IllegalTransition):
        incident.record_sla_warning("resolve", 50, "p", 1, NOW, BOT, "c")
    incident.record_sla_breach("respond", "p", 1, NOW, BOT, "c")
    with pytest.raises(IllegalTransition):
        incident.record_sla_breach("respond", "p", 1, NOW, BOT, "c")
    incident.acknowledge(BOT, "c")
    with pytest.raises(IllegalTransition):  # the respond clock stopped at acknowledgement
        incident.record_sla_warning("respond", 90, "p", 1, NOW, BOT, "c")
    incident.record_sla_breach("ola:network", "p", 1, NOW, BOT, "c")
    incident.resolve("fixed", "", BOT, "c")
    with pytest.raises(IllegalTransition):
        incident.record_sla_breach("resolve", "p", 1, NOW, BOT, "c")
    with pytest.raises(InvalidValue):
        new_incident().record_sla_breach("fix", "p", 1, NOW, BOT, "c")
    events = incident.collect_events()
    copy = replay(events)
    assert copy.sla_marks == incident.sla_marks
    m = mapper()
    for event in events:
        assert m.to_domain_event(m.to_stored_event(event)).__dict__ == event.__dict__
    assert isinstance(events[1], Incident.SlaWarningReached)
