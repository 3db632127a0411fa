"""A seeded, streaming generator of incident histories, as stored events (bench/queries.py).

Every incident is an `Incident` aggregate driven by the domain's own commands
(`domain/incident/commands.py`: LogIncident, Assign, Acknowledge, Hold, ...), each run with a
`Context` whose `occurred_at` is the moment it happened: the mechanism imported history uses,
so every event carries its own time (`at`, published as the envelope's `occurred_at`) and the
domain's rules judge every step (nothing is written that a command would refuse). The events
are recorded "now" (the library's timestamp, published as `recorded_at`), like an import.

The history spans `years` before `end`: openings follow office hours, weekdays and a gentle
growth; each incident is assigned to one of 80 groups / 250 agents (reassigned sometimes,
escalated a few times), acknowledged, worked with comments and work notes, put on hold with a
reason sometimes, reprioritised or recategorised now and then, resolved, sometimes reopened
and resolved again, then closed by the caller (with a satisfaction score, often) or by the
auto-close after three days. A few percent are cancelled, one in a hundred is left untouched
in a queue and one stalls in progress, some wait months on a vendor; whatever falls after
`end` is not recorded, so the incidents of the last days (and the long waits) are still open
at the end: about 3% of them.

Events come out in time order across incidents (the notification log interleaves them as a
live desk would), through a heap of the incidents in flight: memory follows how many are open
at once, not the size of the history. Ids, numbers, choices and times come from one
`random.Random(seed)`: the same seed, size and end give the same events (but `recorded_at`).
"""

from __future__ import annotations

import heapq
import math
import random
from bisect import bisect, bisect_right
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import accumulate
from typing import Any
from uuid import UUID

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
from domain.incident.incident import Incident
from domain.shared_kernel.actor import Actor, ActorKind
from domain.shared_kernel.command_context import Context
from domain.shared_kernel.commands import Rules

HOUR = 3600.0
DAY = 24 * HOUR

# ---------------------------------------------------------------- reference data

_FUNCTIONS = [
    "service-desk",
    "desktop",
    "network",
    "database",
    "identity",
    "messaging",
    "erp",
    "crm",
    "storage",
    "security",
    "cloud",
    "printing",
    "telephony",
    "web",
    "hr-apps",
    "finance-apps",
]
_REGIONS = ["emea", "amer", "apac", "latam", "anz"]
GROUPS = [f"{f}-{r}" for f in _FUNCTIONS for r in _REGIONS]  # 80
AGENTS = [f"agent{n:03d}" for n in range(250)]  # agent n works in group n % 80
_AGENTS_OF = {
    g: [a for n, a in enumerate(AGENTS) if n % len(GROUPS) == i] for i, g in enumerate(GROUPS)
}
_CATEGORIES = {
    "hardware": ["laptop", "desktop", "printer", "monitor", "peripheral"],
    "software": ["install", "crash", "licence", "update", "performance"],
    "network": ["connectivity", "vpn", "wifi", "dns", "firewall"],
    "access": ["password", "account-locked", "permissions", "mfa", "new-account"],
    "email": ["delivery", "mailbox-full", "spam", "calendar", "distribution-list"],
    "database": ["slow-query", "connection", "backup", "replication", "storage"],
    "application": ["error", "data", "report", "integration", "login"],
    "telephony": ["headset", "softphone", "voicemail", "conference", "mobile"],
    "security": ["phishing", "malware", "lost-device", "vulnerability", "policy"],
    "facilities": ["badge", "meeting-room", "av-equipment", "desk", "power"],
}
CATEGORIES = [(c, s) for c, subs in _CATEGORIES.items() for s in subs]  # 50
_SERVICES = [
    "email",
    "vpn",
    "erp",
    "crm",
    "wifi",
    "sso",
    "printing",
    "payroll",
    "intranet",
    "portal",
    "file-share",
    "backup",
    "chat",
    "sharepoint",
    "sap-fi",
    "sap-hr",
    "citrix",
    "laptops",
    "mobile",
    "telephony",
    "warehouse",
    "web-shop",
    "billing",
    "lims",
    "cad",
]
SERVICES = [f"{s}{r}" for s in _SERVICES for r in ("", "-eu", "-us", "-asia")]  # 100
CALLERS = 40_000
# (impact, urgency) -> priority with the default matrix: P1 3%, P2 15%, P3 47%, P4 35%.
_IMPACT_URGENCY = [
    ((1, 1), 3),
    ((1, 2), 7),
    ((2, 1), 8),
    ((1, 3), 5),
    ((2, 2), 30),
    ((3, 1), 12),
    ((2, 3), 15),
    ((3, 2), 12),
    ((3, 3), 8),
]
# Mean response (assignment, acknowledgement) and median work time to resolve, by priority.
_ASSIGN_MEAN = {"P1": 300.0, "P2": 900.0, "P3": 2700.0, "P4": 2 * HOUR}
_ACK_MEAN = {"P1": 600.0, "P2": 1800.0, "P3": 2 * HOUR, "P4": 6 * HOUR}
_WORK_MEDIAN = {"P1": 4 * HOUR, "P2": 12 * HOUR, "P3": 36 * HOUR, "P4": 80 * HOUR}
_CHANNELS = [("portal", 45), ("email", 25), ("phone", 20), ("monitoring", 10)]
_HOLD_REASONS = [
    ("awaiting_caller", 55),
    ("awaiting_vendor", 20),
    ("awaiting_change", 15),
    ("awaiting_problem", 10),
]
_LONG_HOLD_REASONS = [("awaiting_vendor", 50), ("awaiting_problem", 30), ("awaiting_change", 20)]
_CODES = [
    ("fixed", 55),
    ("workaround", 20),
    ("no_fault_found", 10),
    ("user_error", 10),
    ("duplicate", 5),
]
_SCORES = [(5, 45), (4, 30), (3, 12), (2, 7), (1, 6)]
_NOTES = [
    "Called the user, will retry after the reboot.",
    "Vendor ticket opened; waiting on their logs.",
    "Replaced the part and ran a test.",
    "Cleared the cached credentials and re-synced the profile.",
    "Checked the switch port: errors on the uplink, swapped the cable.",
    "Reproduced on a second machine; collecting traces.",
    "Applied the known-error workaround from the knowledge base.",
    "Asked the caller for a screenshot of the error.",
]
MONITORING = Actor("monitoring", ActorKind.AUTOMATION)
AUTO_CLOSE = Actor("auto-close", ActorKind.AUTOMATION)


class Weighted:
    """Draws from `items` with `weights` (a bisect on the cumulated weights)."""

    def __init__(self, items: list[Any], weights: list[float]) -> None:
        self.items, self.cumulated = items, list(accumulate(weights))
        self.total = self.cumulated[-1]

    @classmethod
    def of(cls, pairs: list[tuple[Any, float]]) -> Weighted:
        return cls([p[0] for p in pairs], [p[1] for p in pairs])

    @classmethod
    def zipf(cls, items: list[Any], s: float = 0.9) -> Weighted:
        return cls(items, [1 / (n + 1) ** s for n in range(len(items))])

    def draw(self, rng: random.Random) -> Any:
        return self.items[bisect(self.cumulated, rng.random() * self.total)]


# ---------------------------------------------------------------- opening times


class Arrivals:
    """The `n` opening moments, ascending: stratified draws from an hourly intensity with
    office hours, quiet weekends and a 30%/year growth over the span."""

    def __init__(self, start: float, end: float, n: int) -> None:
        self.start, self.n = start, n
        hours = max(1, int((end - start) // HOUR))
        weights = []
        for h in range(hours):
            moment = datetime.fromtimestamp(start + h * HOUR, timezone.utc)
            hour, weekday = moment.hour, moment.weekday()
            office = 1.0 if 7 <= hour < 18 else (0.35 if 6 <= hour < 21 else 0.08)
            week = 1.0 if weekday < 5 else 0.25
            trend = 1.3 ** (h / (365 * 24))
            weights.append(office * week * trend)
        self.cumulated = list(accumulate(weights))

    def at(self, index: int, rng: random.Random) -> float:
        target = (index + rng.random()) / self.n * self.cumulated[-1]
        hour = bisect_right(self.cumulated, target)
        before = self.cumulated[hour - 1] if hour else 0.0
        share = (target - before) / (self.cumulated[hour] - before)
        return self.start + (hour + share) * HOUR


# ---------------------------------------------------------------- the generator


@dataclass
class Stats:
    incidents: int = 0
    events: int = 0  # recorded (at or before the end)
    dropped: int = 0  # events that fell after the end: their incidents are still open
    cancelled: int = 0
    untouched: int = 0
    stalled: int = 0
    reopened: int = 0
    reassigned: int = 0
    held: int = 0
    long_held: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


@contextmanager
def seeded_ids(rng: random.Random) -> Iterator[None]:
    """Incident ids drawn from `rng` rather than uuid4, so that a seed gives the same ids.

    The aggregate takes its id from `create_id` (eventsourcing's uuid4); this swaps it on the
    class for as long as the generator runs, in this process only.
    """
    had = "create_id" in Incident.__dict__
    saved = Incident.__dict__.get("create_id")
    Incident.create_id = staticmethod(  # type: ignore[method-assign]
        lambda *_, **__: UUID(int=rng.getrandbits(128), version=4)
    )
    try:
        yield
    finally:
        if had:
            Incident.create_id = saved  # type: ignore[method-assign]
        else:
            del Incident.create_id


class IncidentHistory:
    """`n` incidents opened over `years` before `end`; `events()` yields their stored events
    in time order, as (occurred_at seconds, incident index, StoredEvent)."""

    def __init__(
        self,
        n: int,
        seed: int,
        end: datetime,
        rules: Rules,
        mapper: Any,
        years: float = 3.0,
        prefix: str = "INC",
        first_number: int = 1001,
    ) -> None:
        self.n, self.rules, self.mapper = n, rules, mapper
        self.end = end.timestamp()
        self.start = self.end - years * 365.25 * DAY
        self.prefix, self.first_number = prefix, first_number
        self.rng = random.Random(seed)
        self.arrivals = Arrivals(self.start, self.end, n)
        self.stats = Stats()
        self.sample_ids: list[str] = []  # every 997th incident's id, for point reads
        self._groups = Weighted.zipf(GROUPS, 0.8)
        self._categories = Weighted.zipf(CATEGORIES, 0.9)
        self._services = Weighted.zipf(SERVICES, 0.9)
        self._matrix = Weighted.of(_IMPACT_URGENCY)
        self._channels = Weighted.of(_CHANNELS)
        self._holds = Weighted.of(_HOLD_REASONS)
        self._long_holds = Weighted.of(_LONG_HOLD_REASONS)
        self._codes = Weighted.of(_CODES)
        self._scores = Weighted.of(_SCORES)
        self._seq = 0

    # -- the stream ------------------------------------------------------------------
    def events(self) -> Iterator[tuple[float, int, Any]]:
        heap: list[tuple[float, int, int, Any]] = []
        with seeded_ids(self.rng):
            for index in range(self.n):
                opened = self.arrivals.at(index, self.rng)
                for at, stored in self._incident(index, opened):
                    self._seq += 1
                    heapq.heappush(heap, (at, self._seq, index, stored))
                # Every incident still to come opens at or after `opened`.
                while heap and heap[0][0] <= opened:
                    at, _, owner, stored = heapq.heappop(heap)
                    yield at, owner, stored
        while heap:
            at, _, owner, stored = heapq.heappop(heap)
            if at > self.end:
                self.stats.dropped += 1 + len(heap)
                return
            yield at, owner, stored

    def counted(self) -> Iterator[tuple[float, int, Any]]:
        """`events()`, counting the recorded ones by type."""
        by_type = self.stats.by_type
        for at, owner, stored in self.events():
            self.stats.events += 1
            name = stored.topic.rpartition(".")[2]
            by_type[name] = by_type.get(name, 0) + 1
            yield at, owner, stored

    # -- one incident ----------------------------------------------------------------
    def _incident(self, index: int, opened: float) -> list[tuple[float, Any]]:
        rng = self.rng
        story = _Story(self, opened, index)
        incident = story.log()
        self.stats.incidents += 1
        if index % 997 == 0:
            self.sample_ids.append(str(incident.id))
        priority = incident.priority
        roll = rng.random()
        if roll < 0.04:  # cancelled: a duplicate, or the caller found it themselves
            self.stats.cancelled += 1
            if rng.random() < 0.5:
                story.step(rng.expovariate(1 / _ASSIGN_MEAN[priority]))
                story.run(Assign(self._groups.draw(rng)), by=story.desk_agent)
            story.step(rng.expovariate(1 / (2 * HOUR)))
            story.run(Cancel(rng.choice(["duplicate", "raised in error", "solved by caller"])))
            return story.stored()
        group = self._groups.draw(rng)
        agent = rng.choice(_AGENTS_OF[group]) if rng.random() < 0.7 else None
        story.step(rng.expovariate(1 / _ASSIGN_MEAN[priority]))
        story.run(Assign(group, agent), by=story.desk_agent)
        if roll < 0.05:  # never touched again: left in a queue
            self.stats.untouched += 1
            return story.stored()
        story.agent = agent or rng.choice(_AGENTS_OF[group])
        story.step(rng.expovariate(1 / _ACK_MEAN[priority]))
        story.run(Acknowledge())
        if roll < 0.06:  # stalled: acknowledged, one note, then forgotten
            self.stats.stalled += 1
            story.step(rng.expovariate(1 / DAY))
            story.run(Comment(rng.choice(_NOTES)))
            return story.stored()
        if agent is None:
            story.step(rng.expovariate(1 / 1800))
            story.run(Assign(group, story.agent))
        self._work(story, group, priority)
        self._resolve_and_close(story, priority)
        return story.stored()

    def _work(self, story: _Story, group: str, priority: str) -> None:
        rng = self.rng
        steps: list[str] = ["comment"] * rng.randint(3, 9)
        if rng.random() < 0.22:
            steps.append("reassign")
            self.stats.reassigned += 1
            if rng.random() < 0.2:
                steps.append("reassign")
        if rng.random() < 0.04:
            steps.append("escalate")
        if rng.random() < 0.25:
            steps.append("hold")
            self.stats.held += 1
        if rng.random() < 0.02:
            steps.append("long_hold")
            self.stats.long_held += 1
        if rng.random() < 0.04:
            steps.append("reprioritise")
        if rng.random() < 0.05:
            steps.append("recategorise")
        rng.shuffle(steps)
        work = _WORK_MEDIAN[priority] * math.exp(rng.gauss(0, 1.1))
        shares = [rng.expovariate(1.0) for _ in range(len(steps) + 1)]
        total = sum(shares)
        for step, share in zip(steps, shares, strict=False):
            story.step(work * share / total)
            self._do(story, step, group)
            group = story.group
        story.step(work * shares[-1] / total)

    def _do(self, story: _Story, step: str, group: str) -> None:
        rng = self.rng
        if step == "comment":
            story.run(Comment(rng.choice(_NOTES), public=rng.random() < 0.3))
        elif step == "reassign":
            other = self._groups.draw(rng)
            while other == group:
                other = self._groups.draw(rng)
            agent = rng.choice(_AGENTS_OF[other]) if rng.random() < 0.6 else None
            story.run(Assign(other, agent))
            story.group, story.agent = other, agent or rng.choice(_AGENTS_OF[other])
        elif step == "escalate":
            if story.incident.tier != "L3":
                story.run(Escalate("functional", reason="needs a specialist"))
        elif step in ("hold", "long_hold"):
            long = step == "long_hold"
            reason = (self._long_holds if long else self._holds).draw(rng)
            story.run(Hold(reason, note="waiting"))
            median = 60 * DAY if long else 20 * HOUR
            story.step(median * math.exp(rng.gauss(0, 0.9)))
            story.run(Resume())
        elif step == "reprioritise":
            impact, urgency = self._matrix.draw(rng)
            incident = story.incident
            if (impact, urgency) != (incident.impact, incident.urgency):
                story.run(Reprioritise(impact, urgency, reason="impact reassessed"))
        elif step == "recategorise":
            category, subcategory = self._categories.draw(rng)
            incident = story.incident
            if (category, subcategory) != (incident.category, incident.subcategory):
                story.run(Recategorise(category, subcategory))

    def _resolve_and_close(self, story: _Story, priority: str) -> None:
        rng = self.rng
        story.run(Resolve(self._codes.draw(rng), notes="see work notes"))
        reopens = 0
        while reopens < 2 and rng.random() < (0.08 if reopens == 0 else 0.12):
            reopens += 1
            story.step(rng.expovariate(1 / (20 * HOUR)))
            story.run(Reopen("still failing"), by=story.caller)
            story.step(_WORK_MEDIAN[priority] * 0.4 * math.exp(rng.gauss(0, 1.0)))
            story.run(Comment(rng.choice(_NOTES)))
            story.step(rng.expovariate(1 / HOUR))
            story.run(Resolve(self._codes.draw(rng), notes="fixed for good"))
        if reopens:
            self.stats.reopened += 1
        if rng.random() < 0.35:  # the caller confirms, and often scores
            story.step(rng.expovariate(1 / (10 * HOUR)))
            score = self._scores.draw(rng) if rng.random() < 0.7 else None
            story.run(Close(score, comment=""), by=story.caller)
        else:
            story.step(3 * DAY)
            story.run(Close(None, comment="closed automatically"), by=AUTO_CLOSE)

    def next_number(self, index: int) -> str:
        return f"{self.prefix}{self.first_number + index:07d}"


class _Story:
    """One incident being written: the aggregate, its clock and who works on it."""

    def __init__(self, history: IncidentHistory, opened: float, index: int) -> None:
        self.history, self.clock, self.index = history, opened, index
        self.times: list[float] = []
        rng = history.rng
        self.caller = Actor(f"user{rng.randrange(CALLERS):05d}")
        self.desk_agent = Actor(rng.choice(_AGENTS_OF[GROUPS[0]]))  # service-desk-emea
        self.group: str | None = None
        self.agent: str | None = None
        self.incident: Incident

    def log(self) -> Incident:
        h, rng = self.history, self.history.rng
        category, subcategory = h._categories.draw(rng)
        service = h._services.draw(rng)
        impact, urgency = h._matrix.draw(rng)
        channel = h._channels.draw(rng)
        by = {"monitoring": MONITORING, "phone": self.desk_agent}.get(channel, self.caller)
        command = LogIncident(
            title=f"{subcategory} problem on {service}",
            caller=self.caller.id,
            impact=impact,
            urgency=urgency,
            description="Generated by bench/queries.py.",
            channel=channel,
            service=service,
            category=category,
            subcategory=subcategory,
        )
        self.incident = command.run(h.next_number(self.index), self._ctx(by), h.rules)
        self.times.append(self.clock)
        return self.incident

    def step(self, seconds: float) -> None:
        self.clock += max(1.0, seconds)

    def run(self, command: Any, by: Actor | None = None) -> None:
        if isinstance(command, Assign):
            self.group = command.group
        if by is not None:
            actor = by
        else:
            actor = Actor(self.agent) if self.agent else self.desk_agent
        command.run(self.incident, self._ctx(actor), self.history.rules)
        self.times.append(self.clock)

    def _ctx(self, by: Actor) -> Context:
        moment = datetime.fromtimestamp(round(self.clock, 3), timezone.utc)
        return Context(by, f"gen-{self.index}-{len(self.times)}", occurred_at=moment)

    def stored(self) -> list[tuple[float, Any]]:
        events = self.incident.collect_events()
        to_stored = self.history.mapper.to_stored_event
        return [(at, to_stored(e)) for at, e in zip(self.times, events, strict=True)]


def end_of(text: str | None) -> datetime:
    """`--end`: an ISO date or date-time (UTC if no offset); default 2026-11-01."""
    moment = datetime.fromisoformat(text or "2026-11-01T00:00:00+00:00")
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def a_year_before(moment: datetime) -> datetime:
    try:
        return moment.replace(year=moment.year - 1)
    except ValueError:  # 29 February
        return moment.replace(year=moment.year - 1, day=28)
