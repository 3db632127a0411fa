"""One SLA clock (a row of sla_clocks) and the steps that move it.

A clock counts the business time of one ticket and metric ("respond", "resolve",
"ola:<group>") from the policy version it started with: elapsed while it runs, paused while
its policy pauses for the ticket's hold reason, nothing once stopped. After each step it
works out its due time, its state (running, paused, met, breached, cancelled) and the alarms
still to record (the warnings and the breach, each with the instant it falls due). Every
figure is a function of the events' `occurred_at`: nothing here reads the wall clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, NotRequired, TypedDict

import orjson

from domain.shared_kernel.business_calendar import BusinessCalendar
from domain.sla.policy_rules import calendar_of, pause_reasons, target
from projections.incident.incident_record import Record
from projections.runtime.time_text import iso
from projections.sla.sla_policy_book import PolicyBook, PolicyVersion

CLOCK_COLUMNS = (
    "ticket_id",
    "metric",
    "number",
    "policy_id",
    "policy_version",
    "priority",
    "group_name",
    "target_s",
    "started_at",
    "since",
    "elapsed_s",
    "paused_s",
    "status",
    "state",
    "due_at",
    "breached_at",
    "overrun_s",
    "stopped_at",
    "decided_at",
    "warnings",
    "breach_recorded",
    "alarms",
    "lag_s",
    "seq",
)


class _ClockColumns(TypedDict):
    ticket_id: str
    metric: str  # respond, resolve or ola:<group>
    number: str | None
    policy_id: str
    policy_version: int
    priority: str | None
    group_name: str | None  # the group the clock reports: the OLA's, else the ticket's
    target_s: float
    started_at: str
    since: str  # the moment `elapsed_s` and `paused_s` count up to
    elapsed_s: float
    paused_s: float
    status: str  # running, paused or stopped: whether and how it counts
    state: str  # running, paused, met, breached or cancelled
    due_at: str | None
    breached_at: str | None
    overrun_s: float
    stopped_at: str | None
    decided_at: str | None
    breach_recorded: bool
    alarms: str | None  # JSON [[due, "warning" | "breach", threshold], ...]
    lag_s: float
    seq: int


class Clock(_ClockColumns):
    """A clock as the steps move it."""

    warnings: list[float]  # the warning thresholds (%) recorded
    _dirty: NotRequired[bool]  # changed by the event being folded


class StoredClock(_ClockColumns):
    """A clock as sla_clocks stores it."""

    warnings: str  # JSON


# A ticket's clocks, by metric.
TicketClocks = dict[str, Clock]


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _secs(delta: timedelta) -> float:
    return delta.total_seconds()


class Clockwork:
    """The steps, with the policy versions they read (`book`) and a cache of their
    calendars by (policy id, version) that outlives one batch. A simulation
    (`simulation`) records no alarms."""

    def __init__(
        self,
        book: PolicyBook,
        calendars: dict[tuple[str, int], BusinessCalendar],
        simulation: bool,
    ) -> None:
        self.book, self.calendars, self.simulation = book, calendars, simulation

    def start(
        self,
        record: Record,
        clocks: TicketClocks,
        metric: str,
        at: datetime,
        version: PolicyVersion,
    ) -> None:
        """A new clock of `metric` for the ticket, if the policy version has a target."""
        seconds = target(version["spec"], metric, record["priority"])
        if seconds is None:
            return
        clock = clocks[metric] = _new_clock(record, metric, version, float(seconds), iso(at))
        if record["hold_reason"] in pause_reasons(version["spec"], metric):
            clock["status"] = "paused"
        self.refresh(clock)

    def account(self, clock: Clock, at: datetime) -> None:
        """Count the time from `since` to `at` as elapsed (running) or paused."""
        since = moment(clock["since"])
        if at <= since or clock["status"] == "stopped":
            return
        run = _secs(self._calendar(clock).measure(since, at))
        if clock["status"] == "running":
            self._run(clock, since, run)
        else:
            clock["paused_s"] += run
        clock["since"] = iso(at)
        clock["_dirty"] = True

    def _run(self, clock: Clock, since: datetime, run: float) -> None:
        """Count `run` seconds from `since` as elapsed; passing the target breaches."""
        left = clock["target_s"] - clock["elapsed_s"]
        if clock["breached_at"] is None and run > left:
            # The moment the elapsed time reached the target: a fact of the past events.
            reached = self._calendar(clock).add(since, timedelta(seconds=max(left, 0)))
            clock["breached_at"] = iso(reached)
        clock["elapsed_s"] += run

    def pause(self, clock: Clock, at: datetime) -> None:
        self.account(clock, at)
        clock["status"] = "paused"
        self.refresh(clock)

    def unpause(self, clocks: Sequence[Clock], at: datetime) -> None:
        for clock in clocks:
            if clock["status"] == "paused":
                self.account(clock, at)
                clock["status"] = "running"
                self.refresh(clock)

    def stop(self, clock: Clock, at: datetime, cancelled: bool = False) -> None:
        self.account(clock, at)
        clock["status"], clock["stopped_at"] = "stopped", iso(at)
        decide(clock, cancelled)
        clock["alarms"] = None
        clock["_dirty"] = True

    def resume(self, clock: Clock, at: datetime) -> None:
        """A stopped clock runs on from where it stopped; the time stopped does not count."""
        if clock["status"] != "stopped":
            return
        clock["status"], clock["since"], clock["stopped_at"] = "running", iso(at), None
        self.refresh(clock)

    def retarget(self, clock: Clock, priority: str, at: datetime) -> None:
        """The new priority's target of the same policy version, counted from the start.

        A clock whose elapsed time already exceeds the new target breaches at this event
        (it could not have breached earlier: the target was different then).
        """
        seconds = target(self.spec(clock), clock["metric"], priority)
        self.account(clock, at)
        clock["priority"] = priority
        if seconds is not None:
            clock["target_s"] = float(seconds)
            if clock["breached_at"] is None and clock["elapsed_s"] > seconds:
                clock["breached_at"] = iso(at)
        self.refresh(clock)

    def strike(self, clock: Clock, name: str, notice: Mapping[str, Any]) -> None:
        """Strike the notice's alarm off, and nothing else.

        Its occurred_at is when it was recorded, not a moment of the ticket's time line, so
        it must not be accounted: that would move `since` past the ticket's later events.
        Nor does it say the clock breached: a breach notice can be recorded while an import
        has yet to deliver the resolution that came before the due moment.
        """
        if name == "SlaWarningReached":
            clock["warnings"] = sorted({*clock["warnings"], notice["threshold"]})
        else:
            clock["breach_recorded"] = True
        self._set_alarms(clock)

    def refresh(self, clock: Clock) -> None:
        """Due time, overrun, state and the alarms still to record, after any change."""
        calendar = self._calendar(clock)
        decide(clock)
        if clock["status"] == "running":
            clock["due_at"] = _due_at(clock, calendar)
        elif clock["status"] == "paused":
            clock["due_at"] = None  # not due while the clock does not run
        self._set_alarms(clock)

    def pauses_for(self, clock: Clock, reason: str | None) -> bool:
        """Whether the clock's policy pauses it for the hold reason."""
        return reason in pause_reasons(self.spec(clock), clock["metric"])

    def spec(self, clock: Clock) -> Mapping[str, Any]:
        spec = self.book.spec(clock["policy_id"], clock["policy_version"])
        if spec is None:
            raise LookupError(f"policy {clock['policy_id']} v{clock['policy_version']} unknown")
        return spec

    def _calendar(self, clock: Clock) -> BusinessCalendar:
        key = (clock["policy_id"], clock["policy_version"])
        if key not in self.calendars:
            self.calendars[key] = calendar_of(self.spec(clock))
        return self.calendars[key]

    def _set_alarms(self, clock: Clock) -> None:
        # A simulation records nothing, and a clock that does not run falls due for nothing.
        running = clock["status"] == "running" and not self.simulation
        alarms = self._pending(clock) if running else []
        clock["alarms"] = (
            orjson.dumps(sorted(alarms, key=lambda a: a[0])).decode() if alarms else None
        )
        clock["_dirty"] = True

    def _pending(self, clock: Clock) -> list[list[Any]]:
        """The warnings and the breach still to record, each at the instant it falls due."""
        calendar = self._calendar(clock)
        alarms: list[list[Any]] = [
            [_warning_due(clock, calendar, threshold), "warning", threshold]
            for threshold in self.spec(clock).get("warnings", [])
            if threshold not in clock["warnings"]
        ]
        if not clock["breach_recorded"]:
            alarms.append([clock["due_at"], "breach", None])
        return alarms


def _due_at(clock: Clock, calendar: BusinessCalendar) -> str:
    """When a running clock reaches its target; past it, when it did."""
    left = clock["target_s"] - clock["elapsed_s"]
    if left <= 0:
        return clock["breached_at"] or clock["since"]
    return iso(calendar.add(moment(clock["since"]), timedelta(seconds=left)))


def _warning_due(clock: Clock, calendar: BusinessCalendar, threshold: float) -> str:
    since = moment(clock["since"])
    need = clock["target_s"] * threshold / 100 - clock["elapsed_s"]
    return iso(calendar.add(since, timedelta(seconds=need)) if need > 0 else since)


def decide(clock: Clock, cancelled: bool = False) -> None:
    """The clock's overrun and state, and when it was decided (met or breached)."""
    clock["overrun_s"] = max(0.0, clock["elapsed_s"] - clock["target_s"])
    if clock["breached_at"] is not None:  # a breach is never undone
        clock["state"], clock["decided_at"] = "breached", clock["breached_at"]
    elif clock["status"] != "stopped":
        clock["state"] = clock["status"]
        clock["decided_at"] = None
    elif cancelled or clock["state"] == "cancelled":
        clock["state"], clock["decided_at"] = "cancelled", None
    else:
        clock["state"], clock["decided_at"] = "met", clock["stopped_at"]


def _new_clock(
    record: Record, metric: str, version: PolicyVersion, seconds: float, started: str
) -> Clock:
    return {
        "ticket_id": record["id"],
        "metric": metric,
        "number": record["number"],
        "policy_id": version["policy_id"],
        "policy_version": version["version"],
        "priority": record["priority"],
        "group_name": metric[4:] if metric.startswith("ola:") else record["assignment_group"],
        "target_s": seconds,
        "started_at": started,
        "since": started,
        "elapsed_s": 0.0,
        "paused_s": 0.0,
        "status": "running",
        "state": "running",
        "due_at": None,
        "breached_at": None,
        "overrun_s": 0.0,
        "stopped_at": None,
        "decided_at": None,
        "warnings": [],
        "breach_recorded": False,
        "alarms": None,
        "lag_s": 0.0,
        "seq": 0,
    }
