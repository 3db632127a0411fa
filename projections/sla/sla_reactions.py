"""What one event of an incident means for its SLA clocks.

What the ticket is at each event (priority, group, state, hold reason) is its incident
record, the one fold of the incident's events (projections/incident/incident_record.py);
the clocks react to how the record moved: a new incident starts the clocks of the policy
that applies, and each later event moves the record in one way at most (its group, its
acknowledgement, a hold, a resumption, a resolution, a reopening, a cancellation or its
priority), to which its clocks react.

The scheduler's notices (SlaWarningReached, SlaBreached) only strike off the alarm they
name (`Clockwork.strike` says why).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypedDict

from domain.incident.lifecycle import OPEN_STATES
from projections.incident import incident_record
from projections.incident.incident_record import Record, entered
from projections.runtime.envelope import Envelope
from projections.runtime.time_text import iso
from projections.sla.sla_clock import Clock, Clockwork, TicketClocks

NOTICES = frozenset({"SlaWarningReached", "SlaBreached"})


class Ticket(TypedDict):
    """What the clocks keep of a ticket (sla_tickets): its incident record and the policy
    its clocks started with."""

    record: Record
    policy_id: str | None


@dataclass(frozen=True)
class _Move:
    """How one event moved a ticket's record (from `before`), as its clocks react to it."""

    work: Clockwork
    before: Record
    ticket: Ticket
    clocks: TicketClocks
    at: datetime

    @property
    def record(self) -> Record:
        return self.ticket["record"]

    def running(self) -> list[Clock]:
        """The clocks that are not stopped."""
        return [clock for clock in self.clocks.values() if clock["status"] != "stopped"]


def fold_ticket(
    work: Clockwork, ticket: Ticket | None, clocks: TicketClocks, event: Envelope
) -> Ticket | None:
    """The ticket after one of its incident's events, its clocks moved; None for an incident
    logged before this read model existed (it has no clocks)."""
    before = ticket["record"] if ticket else None
    record = incident_record.fold(before, event)
    if not incident_record.was_logged(record):
        return None
    after: Ticket = {"record": record, "policy_id": ticket["policy_id"] if ticket else None}
    at = event.occurred_at.astimezone(timezone.utc)
    if before is None:
        _open(work, after, clocks, at)
    else:
        _follow(_Move(work, before, after, clocks, at))
    if event.name in NOTICES and not work.simulation:
        _notice(work, clocks, event)
    return after


def _open(work: Clockwork, ticket: Ticket, clocks: TicketClocks, at: datetime) -> None:
    """A new incident: the respond and resolve clocks of the policy that applies."""
    chosen = work.book.choose(_conditions(ticket["record"]), iso(at))
    if chosen is None:
        return
    ticket["policy_id"] = chosen["policy_id"]
    for metric in ("respond", "resolve"):
        work.start(ticket["record"], clocks, metric, at, chosen)


def _follow(move: _Move) -> None:
    """The first reaction that fits how the record moved."""
    for moved, react in _REACTIONS:
        if moved(move.before, move.record):
            react(move)
            return


def _notice(work: Clockwork, clocks: TicketClocks, event: Envelope) -> None:
    metric = event.payload.get("metric")
    clock = clocks.get(metric) if isinstance(metric, str) else None
    if clock is not None:
        work.strike(clock, event.name, event.payload)


# -- reactions ---------------------------------------------------------------------------


def _regroup(move: _Move) -> None:
    """The group that had the ticket stops its OLA clock; the new one starts or resumes."""
    old = move.clocks.get(f"ola:{move.before['assignment_group']}")
    if old is not None and old["status"] != "stopped":
        move.work.stop(old, move.at)
    for clock in move.running():  # respond and resolve report the group holding it
        if not clock["metric"].startswith("ola:"):
            clock["group_name"], clock["_dirty"] = move.record["assignment_group"], True
    if move.record["assignment_group"] is not None and move.record["state"] in OPEN_STATES:
        _follow_ola(move)


def _follow_ola(move: _Move) -> None:
    metric, clocks = f"ola:{move.record['assignment_group']}", move.clocks
    if metric in clocks:
        if clocks[metric]["state"] != "cancelled":
            move.work.resume(clocks[metric], move.at)
        return
    policy_id = move.ticket["policy_id"]
    version = move.work.book.in_force(policy_id, iso(move.at)) if policy_id else None
    if version:
        move.work.start(move.record, clocks, metric, move.at, version)


def _responded(move: _Move) -> None:
    respond = move.clocks.get("respond")
    if respond is not None and respond["status"] != "stopped":
        move.work.stop(respond, move.at)


def _held(move: _Move) -> None:
    """Clocks whose policy pauses for this hold reason stop counting."""
    reason = move.record["hold_reason"]
    for clock in move.running():
        if clock["status"] == "running" and move.work.pauses_for(clock, reason):
            move.work.pause(clock, move.at)


def _resumed(move: _Move) -> None:
    move.work.unpause(move.running(), move.at)


def _resolved(move: _Move) -> None:
    for clock in move.running():  # the resolution is also the (first) response
        move.work.stop(clock, move.at)


def _reopened(move: _Move) -> None:
    """The resolve clock and the current group's OLA run on from where they stopped."""
    for metric in ("resolve", f"ola:{move.record['assignment_group']}"):
        clock = move.clocks.get(metric)
        if clock is not None and clock["status"] == "stopped" and clock["state"] != "cancelled":
            move.work.resume(clock, move.at)


def _cancelled(move: _Move) -> None:
    for clock in move.running():
        move.work.stop(clock, move.at, cancelled=True)


def _reprioritised(move: _Move) -> None:
    for clock in move.running():
        move.work.retarget(clock, move.record["priority"], move.at)


# -- how the incident record moved at one event, as the clocks tell moves apart ----------


def _moved_group(before: Record, after: Record) -> bool:
    return bool(after["assignment_group"] != before["assignment_group"])


def _was_acknowledged(before: Record, after: Record) -> bool:
    return bool(after["acknowledged_at"] != before["acknowledged_at"])


def _went_on_hold(before: Record, after: Record) -> bool:
    return entered(before, after, "on_hold")


def _came_off_hold(before: Record, after: Record) -> bool:
    return bool(before["state"] == "on_hold" and after["state"] == "in_progress")


def _was_resolved(before: Record, after: Record) -> bool:
    return entered(before, after, "resolved")


def _was_reopened(before: Record, after: Record) -> bool:
    return bool(after["reopen_count"] != before["reopen_count"])


def _was_cancelled(before: Record, after: Record) -> bool:
    return entered(before, after, "cancelled")


def _was_reprioritised(before: Record, after: Record) -> bool:
    return any(after[f] != before[f] for f in ("impact", "urgency", "priority"))


# Each event moves the record in one of these ways at most; the first that fits reacts.
_REACTIONS: tuple[tuple[Callable[[Record, Record], bool], Callable[[_Move], None]], ...] = (
    (_moved_group, _regroup),
    (_was_acknowledged, _responded),
    (_went_on_hold, _held),
    (_came_off_hold, _resumed),
    (_was_resolved, _resolved),
    (_was_reopened, _reopened),
    (_was_cancelled, _cancelled),
    (_was_reprioritised, _reprioritised),
)


def _conditions(record: Record) -> dict[str, Any]:
    """What a policy's conditions look at (domain/sla/policy_rules.py: `matches`)."""
    return {
        "ticket_type": "incident",
        "priority": record["priority"],
        "service": record["service"] or None,
        "category": record["category"] or None,
        "organisation": record.get("organisation"),  # no incident event carries one yet
    }
