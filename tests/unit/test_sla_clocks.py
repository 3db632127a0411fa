"""The clock read model, driven by published envelopes at chosen instants (24x7 calendar)."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest

from domain.shared_kernel.business_calendar import BusinessCalendar
from projections.runtime.time_text import iso
from projections.sla.sla_queries import live
from tests.unit.test_sla_support import (
    SCHEDULER,
    Clocks,
    H,
    Ticket,
    at,
    policy_envelope,
    spec,
)

YEARS_LATER = at(hours=24 * 365 * 10)  # when an import's scheduler stamps its notices
# Which notices were recorded and when rows were written; the rest is the clock itself.
BOOKKEEPING = ("warnings", "breach_recorded", "alarms", "lag_s", "seq")


@pytest.fixture
def clocks() -> Clocks:
    return Clocks().feed(policy_envelope(spec()))


def test_logging_starts_respond_and_resolve_clocks_with_the_policy_version(clocks):
    ticket = Ticket(at(0))  # impact 2 x urgency 2 = P3
    clocks.feed(ticket)
    respond, resolve = clocks.clock(ticket, "respond"), clocks.clock(ticket, "resolve")
    assert (respond["policy_id"], respond["policy_version"], respond["priority"]) == (
        "policy-1",
        1,
        "P3",
    )
    assert respond["target_s"] == H and resolve["target_s"] == 24 * H
    assert respond["state"] == resolve["state"] == "running"
    assert respond["due_at"] == iso(at(1)) and resolve["due_at"] == iso(at(24))
    assert respond["started_at"] == iso(at(0))


def test_acknowledging_in_time_meets_the_respond_clock_only(clocks):
    ticket = Ticket(at(0))
    clocks.feed(ticket.do("acknowledge", at=at(minutes=40)))
    respond = clocks.clock(ticket, "respond")
    assert respond["state"] == "met" and respond["elapsed_s"] == 40 * 60
    assert respond["decided_at"] == iso(at(minutes=40)) and respond["overrun_s"] == 0
    assert respond["alarms"] is None
    assert clocks.clock(ticket, "resolve")["state"] == "running"


def test_acknowledging_late_breaches_at_the_due_moment_with_the_overrun(clocks):
    ticket = Ticket(at(0))
    clocks.feed(ticket.do("acknowledge", at=at(hours=1, minutes=30)))
    respond = clocks.clock(ticket, "respond")
    assert respond["state"] == "breached"
    assert respond["breached_at"] == iso(at(1)) == respond["decided_at"]
    assert respond["overrun_s"] == 30 * 60


def test_awaiting_caller_pauses_resolve_but_not_respond(clocks):
    ticket = Ticket(at(0))
    clocks.feed(ticket.do("hold", "awaiting_caller", at=at(hours=2)))
    assert clocks.clock(ticket, "resolve")["state"] == "paused"
    assert clocks.clock(ticket, "resolve")["due_at"] is None
    assert clocks.clock(ticket, "respond")["status"] == "running"
    clocks.feed(ticket.do("resume", at=at(hours=5)))
    resolve = clocks.clock(ticket, "resolve")
    assert resolve["state"] == "running" and resolve["elapsed_s"] == 2 * H
    assert resolve["paused_s"] == 3 * H
    assert resolve["due_at"] == iso(at(24 + 3))  # the 3 paused hours push the deadline
    clocks.feed(ticket.do("resolve", "fixed", "", at=at(hours=10)))
    resolve = clocks.clock(ticket, "resolve")
    assert resolve["state"] == "met" and resolve["elapsed_s"] == 7 * H


def test_a_hold_reason_outside_the_pause_rules_does_not_stop_the_clock(clocks):
    ticket = Ticket(at(0))
    clocks.feed(ticket.do("hold", "awaiting_problem", at=at(hours=1)))
    assert clocks.clock(ticket, "resolve")["state"] == "running"


def test_pause_rules_are_per_metric_and_per_policy():
    clocks = Clocks().feed(
        policy_envelope(spec(pause={"respond": ["awaiting_vendor"], "resolve": []}))
    )
    ticket = Ticket(at(0))
    clocks.feed(ticket.do("hold", "awaiting_vendor", at=at(minutes=10)))
    assert clocks.clock(ticket, "respond")["state"] == "paused"
    assert clocks.clock(ticket, "resolve")["state"] == "running"


def test_reprioritising_retargets_from_the_original_start(clocks):
    ticket = Ticket(at(0))  # P3: resolve 24 h
    clocks.feed(ticket.do("reprioritise", 1, 1, "floor down", at=at(hours=1)))  # P1: 4 h
    resolve = clocks.clock(ticket, "resolve")
    assert resolve["priority"] == "P1" and resolve["target_s"] == 4 * H
    assert resolve["due_at"] == iso(at(4))  # from the start, not from the change
    assert resolve["started_at"] == iso(at(0)) and resolve["policy_version"] == 1


def test_reprioritising_below_the_elapsed_time_breaches_at_the_change(clocks):
    ticket = Ticket(at(0))
    clocks.feed(ticket.do("reprioritise", 1, 1, "floor down", at=at(hours=6)))
    resolve = clocks.clock(ticket, "resolve")
    assert resolve["state"] == "breached" and resolve["breached_at"] == iso(at(6))
    assert resolve["overrun_s"] == 2 * H


def test_reopening_resumes_the_resolve_clock_without_the_time_resolved(clocks):
    ticket = Ticket(at(0))
    clocks.feed(
        ticket.do("acknowledge", at=at(minutes=5)).do("resolve", "fixed", "", at=at(hours=4))
    )
    assert clocks.clock(ticket, "resolve")["state"] == "met"
    clocks.feed(ticket.do("reopen", "came back", at=at(hours=30)))
    resolve = clocks.clock(ticket, "resolve")
    assert resolve["state"] == "running" and resolve["elapsed_s"] == 4 * H
    assert resolve["due_at"] == iso(at(30 + 20))
    assert clocks.clock(ticket, "respond")["state"] == "met"  # not reopened
    clocks.feed(ticket.do("resolve", "fixed", "", at=at(hours=31)))
    assert clocks.clock(ticket, "resolve")["elapsed_s"] == 5 * H


def test_a_policy_edit_applies_to_later_clocks_only(clocks):
    before = Ticket(at(0))
    clocks.feed(before)
    tighter = spec(targets={"respond": {"*": 600}, "resolve": {"*": H}})
    clocks.feed(policy_envelope(tighter, version=2, at=at(1)))
    after = Ticket(at(2))
    clocks.feed(after, before.do("reprioritise", 1, 1, "worse", at=at(hours=2)))
    old = clocks.clock(before, "resolve")
    assert old["policy_version"] == 1 and old["target_s"] == 4 * H  # v1's P1 target
    new = clocks.clock(after, "resolve")
    assert new["policy_version"] == 2 and new["target_s"] == H


def test_most_specific_policy_wins_then_rank():
    clocks = Clocks().feed(
        policy_envelope(spec(name="any"), policy_id="a"),
        policy_envelope(
            spec(
                name="mail",
                conditions={"service": ["mail"]},
                rank=1,
                targets={"resolve": {"*": 2 * H}},
            ),
            policy_id="b",
        ),
        policy_envelope(
            spec(
                name="mail-p3",
                conditions={"service": ["mail"], "priority": ["P3"]},
                targets={"resolve": {"*": 3 * H}},
            ),
            policy_id="c",
        ),
        policy_envelope(
            spec(
                name="mail-hi",
                conditions={"service": ["mail"]},
                rank=5,
                targets={"resolve": {"*": 5 * H}},
            ),
            policy_id="d",
        ),
    )
    p3_mail, p1_mail, other = (
        Ticket(at(0), service="mail"),
        Ticket(at(0), impact=1, urgency=1, service="mail"),
        Ticket(at(0), service="web"),
    )
    clocks.feed(p3_mail, p1_mail, other)
    assert clocks.clock(p3_mail, "resolve")["policy_id"] == "c"  # two conditions
    assert clocks.clock(p1_mail, "resolve")["policy_id"] == "d"  # one condition, rank 5
    assert clocks.clock(other, "resolve")["policy_id"] == "a"
    assert clocks.clock(p3_mail, "respond") is None  # policy c has no respond target


def test_no_matching_policy_means_no_clocks():
    clocks = Clocks().feed(policy_envelope(spec(conditions={"service": ["mail"]})))
    ticket = Ticket(at(0), service="web")
    clocks.feed(ticket.do("acknowledge", at=at(1)))
    assert clocks.all() == []


def test_ola_clock_per_group_stops_on_reassignment_and_resumes_on_return():
    clocks = Clocks().feed(policy_envelope(spec(ola={"network": {"*": 2 * H}})))
    ticket = Ticket(at(0))
    clocks.feed(ticket.do("assign", "network", None, at=at(1)).do("assign", "desk", None, at=at(2)))
    ola = clocks.clock(ticket, "ola:network")
    assert ola["state"] == "met" and ola["elapsed_s"] == H and ola["group_name"] == "network"
    assert clocks.clock(ticket, "ola:desk") is None  # no OLA target for that group
    clocks.feed(ticket.do("assign", "network", None, at=at(5)))
    ola = clocks.clock(ticket, "ola:network")
    assert ola["state"] == "running" and ola["due_at"] == iso(at(6))
    clocks.feed(ticket.do("resolve", "fixed", "", at=at(7)))
    ola = clocks.clock(ticket, "ola:network")
    assert ola["state"] == "breached" and ola["breached_at"] == iso(at(6))
    assert clocks.clock(ticket, "resolve")["group_name"] == "network"


def test_cancelling_cancels_running_clocks_but_keeps_a_breach(clocks):
    ticket = Ticket(at(0))
    clocks.feed(ticket.do("cancel", "duplicate", at=at(hours=2)))
    assert clocks.clock(ticket, "resolve")["state"] == "cancelled"
    assert clocks.clock(ticket, "respond")["state"] == "breached"  # 1 h target, 2 h passed


def test_alarms_list_the_warnings_and_the_breach_until_recorded(clocks):
    ticket = Ticket(at(0))
    clocks.feed(ticket)
    alarms = orjson.loads(clocks.clock(ticket, "respond")["alarms"])
    assert alarms == [
        [iso(at(minutes=30)), "warning", 50],
        [iso(at(minutes=45)), "warning", 75],
        [iso(at(minutes=54)), "warning", 90],
        [iso(at(1)), "breach", None],
    ]
    clocks.feed(
        ticket.do(
            "record_sla_warning",
            "respond",
            50,
            "policy-1",
            1,
            at(1),
            by=SCHEDULER,
            at=at(minutes=30),
        )
    )
    respond = clocks.clock(ticket, "respond")
    assert respond["warnings"] == "[50]"
    assert [a[2] for a in orjson.loads(respond["alarms"])] == [75, 90, None]
    clocks.feed(
        ticket.do(
            "record_sla_breach",
            "respond",
            "policy-1",
            1,
            at(1),
            by=SCHEDULER,
            at=at(minutes=60, seconds=0.4),
        )
    )
    respond = clocks.clock(ticket, "respond")
    assert respond["breach_recorded"]
    assert [a[2] for a in orjson.loads(respond["alarms"])] == [75, 90]
    # The row is exact as of the ticket's last own event; read now, it is breached at due.
    assert respond["state"] == "running" and respond["elapsed_s"] == 0
    now = live(respond, at(minutes=61), BusinessCalendar.always())
    assert now["state"] == "breached" and now["breached_at"] == iso(at(1))


def test_every_change_gets_a_higher_seq(clocks):
    ticket = Ticket(at(0))
    clocks.feed(ticket)
    first = clocks.clock(ticket, "resolve")["seq"]
    clocks.feed(ticket.do("hold", "awaiting_vendor", at=at(1)))
    assert clocks.clock(ticket, "resolve")["seq"] > first
    assert clocks.clock(ticket, "respond")["seq"] == first  # untouched


def test_replaying_gives_the_same_rows(clocks):
    ticket = Ticket(at(0))
    envelopes = (
        ticket.do("assign", "desk", "carol", at=at(minutes=3))
        .do("acknowledge", at=at(minutes=20))
        .do("hold", "awaiting_caller", at=at(1))
        .do("resume", at=at(3))
        .do("reprioritise", 1, 2, "worse", at=at(4))
        .do("resolve", "fixed", "", at=at(9))
        .envelopes()
    )
    clocks.feed(envelopes)
    again = Clocks().feed(policy_envelope(spec()), envelopes)

    def strip(rows):
        return sorted(
            ({k: v for k, v in r.items() if k != "seq"} for r in rows), key=lambda r: r["metric"]
        )

    assert strip(clocks.all()) == strip(again.all())
    resolve = clocks.clock(ticket, "resolve")
    assert resolve["target_s"] == 8 * H and resolve["elapsed_s"] == 7 * H
    assert resolve["state"] == "met" and resolve["group_name"] == "desk"


def test_business_calendar_counts_only_working_hours():
    calendar = {
        "timezone": "UTC",
        "week": {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
    }
    clocks = Clocks().feed(policy_envelope(spec(calendar=calendar)))
    ticket = Ticket(at(hours=7))  # Monday 16:00, P3: 24 business hours
    clocks.feed(ticket)
    resolve = clocks.clock(ticket, "resolve")
    assert resolve["due_at"] == "2026-03-05T16:00:00.000000Z"  # 1 h Mon + 8 Tue + 8 Wed + 7 Thu
    clocks.feed(ticket.do("resolve", "fixed", "", at=at(hours=24)))  # Tuesday 09:00
    assert clocks.clock(ticket, "resolve")["elapsed_s"] == H


def _clock_part(rows: list[dict]) -> list[dict]:
    return sorted(
        ({k: v for k, v in r.items() if k not in BOOKKEEPING} for r in rows),
        key=lambda r: r["metric"],
    )


def _with_and_without_notices(steps) -> tuple[Clocks, Clocks]:
    """The same history fed with the scheduler's notices and without them."""
    envelopes = steps(Ticket(at(0))).envelopes()
    quiet = [e for e in envelopes if e.name not in ("SlaWarningReached", "SlaBreached")]
    return (
        Clocks().feed(policy_envelope(spec()), envelopes),
        Clocks().feed(policy_envelope(spec()), quiet),
    )


def test_a_notice_recorded_years_later_moves_no_clock_and_later_history_still_counts():
    noisy, quiet = _with_and_without_notices(
        lambda t: (
            t.do(
                "record_sla_warning",
                "resolve",
                50,
                "policy-1",
                1,
                at(24),
                by=SCHEDULER,
                at=YEARS_LATER,
            )
            .do("record_sla_breach", "resolve", "policy-1", 1, at(24), by=SCHEDULER, at=YEARS_LATER)
            .do("acknowledge", at=at(minutes=40))
            .do("hold", "awaiting_caller", at=at(2))
            .do("resume", at=at(3))
            .do("resolve", "fixed", "", at=at(30))
        )
    )
    assert _clock_part(noisy.all()) == _clock_part(quiet.all())
    resolve = next(r for r in noisy.all() if r["metric"] == "resolve")
    assert resolve["elapsed_s"] == 29 * H and resolve["since"] == iso(at(30))
    assert resolve["state"] == "breached" and resolve["breached_at"] == iso(at(25))
    assert resolve["breach_recorded"] and orjson.loads(resolve["warnings"]) == [50]


def test_a_breach_notice_raced_by_a_resolution_in_time_leaves_the_clock_met():
    # The scheduler recorded the breach before the import delivered the earlier resolution.
    noisy, quiet = _with_and_without_notices(
        lambda t: (
            t.do("record_sla_breach", "respond", "policy-1", 1, at(1), by=SCHEDULER, at=YEARS_LATER)
            .do("record_sla_breach", "resolve", "policy-1", 1, at(24), by=SCHEDULER, at=YEARS_LATER)
            .do("resolve", "fixed", "", at=at(minutes=16))
        )
    )
    assert _clock_part(noisy.all()) == _clock_part(quiet.all())
    for row in noisy.all():
        assert (row["state"], row["elapsed_s"], row["breached_at"]) == ("met", 16 * 60, None)
        assert row["breach_recorded"] and row["alarms"] is None


def test_a_notice_after_the_clock_stopped_neither_reopens_nor_extends_it():
    # Resolved unacknowledged (the resolution was the response), then reopened: the respond
    # clock stays stopped while the incident would still accept a respond notice.
    noisy, quiet = _with_and_without_notices(
        lambda t: (
            t.do("resolve", "fixed", "", at=at(minutes=30))
            .do("reopen", "back", at=at(2))
            .do(
                "record_sla_warning",
                "respond",
                90,
                "policy-1",
                1,
                at(1),
                by=SCHEDULER,
                at=YEARS_LATER,
            )
            .do("record_sla_breach", "respond", "policy-1", 1, at(1), by=SCHEDULER, at=YEARS_LATER)
        )
    )
    assert _clock_part(noisy.all()) == _clock_part(quiet.all())
    respond = next(r for r in noisy.all() if r["metric"] == "respond")
    assert (respond["status"], respond["state"], respond["elapsed_s"]) == (
        "stopped",
        "met",
        30 * 60,
    )
    assert respond["stopped_at"] == iso(at(minutes=30)) and respond["alarms"] is None


def test_a_clock_keeps_the_lag_of_the_ticket_event_that_last_changed_it(clocks):
    ticket = Ticket(at(0))
    clocks.feed([replace(e, recorded_at=YEARS_LATER) for e in ticket.envelopes()])
    imported = (YEARS_LATER - at(0)).total_seconds()
    assert clocks.clock(ticket, "resolve")["lag_s"] == imported
    notice = ticket.do(
        "record_sla_warning", "resolve", 50, "policy-1", 1, at(24), by=SCHEDULER, at=YEARS_LATER
    ).envelopes()
    clocks.feed([replace(e, recorded_at=YEARS_LATER) for e in notice])
    assert clocks.clock(ticket, "resolve")["lag_s"] == imported  # not the ticket's own time
    worked_here = ticket.do("acknowledge", at=at(2)).envelopes()
    clocks.feed([replace(e, recorded_at=at(2)) for e in worked_here])
    assert clocks.clock(ticket, "respond")["lag_s"] == 0
    assert clocks.clock(ticket, "resolve")["lag_s"] == imported  # untouched, not rewritten
