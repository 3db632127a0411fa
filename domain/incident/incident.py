"""The Incident aggregate: an unplanned interruption of a service, from logging to closure."""

from __future__ import annotations

from datetime import datetime

from eventsourcing.domain import Aggregate, event

from domain.incident.lifecycle import (
    OPEN_STATES,
    TIERS,
    Channel,
    EscalationKind,
    HoldReason,
    IncidentState,
)
from domain.shared_kernel.actor import Actor
from domain.shared_kernel.errors import IllegalTransition, InvalidValue
from domain.shared_kernel.events import StampedEvent
from domain.shared_kernel.personal_data import PersonalData
from domain.shared_kernel.priority import PriorityMatrix, check_level
from domain.shared_kernel.value_checks import CheckedEvent, parse_choice


class Incident(Aggregate):
    """Each command records who acted (`by`) and what caused it (`causation_id`)."""

    # Events that record the SLA clock passing a mark: time, not a change by anyone. They
    # do not conflict with a command made on the version before them (If-Match).
    CLOCK_EVENTS = frozenset({"SlaWarningReached", "SlaBreached"})

    class Event(StampedEvent):
        pass

    class Logged(CheckedEvent, Aggregate.Created):
        class_version = 3
        number: str
        title: str
        description: str
        caller: str
        channel: str
        service: str
        category: str
        subcategory: str
        impact: int
        urgency: int
        priority: str
        by: Actor
        causation_id: str
        at: datetime | None
        source: str | None
        external_ref: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, object]) -> None:
            """Version 1 has no channel: every incident it records was logged by phone."""
            state["channel"] = str(Channel.PHONE)

        @staticmethod
        def upcast_v2_v3(state: dict[str, object]) -> None:
            """Version 2 has no `at` (the time at the source), `source` (the system) or
            `external_ref` (its ticket number there): it records incidents logged here."""
            state.update(at=None, source=None, external_ref=None)

    @event(Logged)
    def __init__(
        self,
        number: str,
        title: str,
        description: str,
        caller: str,
        channel: str,
        service: str,
        category: str,
        subcategory: str,
        impact: int,
        urgency: int,
        priority: str,
        by: Actor,
        causation_id: str,
        at: datetime | None = None,
        source: str | None = None,
        external_ref: str | None = None,
    ) -> None:
        self.opened_at = at or self.created_on
        self.source, self.external_ref = source, external_ref
        self.number, self.title, self.description = number, title, description
        self.caller, self.channel, self.service = caller, channel, service
        self.category, self.subcategory = category, subcategory
        self.impact, self.urgency, self.priority = impact, urgency, priority
        self.state = str(IncidentState.NEW)
        self.hold_reason: str | None = None
        self.assignment_group: str | None = None
        self.assignee: str | None = None
        self.tier = TIERS[0]
        self.major = False
        self.reassignment_count = 0
        self.reopen_count = 0
        self.acknowledged_at: datetime | None = None
        self.resolved_at: datetime | None = None
        self.closed_at: datetime | None = None
        self.cancelled_at: datetime | None = None
        self.resolution_code: str | None = None
        self.resolution_notes: str | None = None
        self.satisfaction: int | None = None

    @classmethod
    def log(
        cls,
        *,
        number: str,
        title: str,
        caller: str,
        impact: int,
        urgency: int,
        matrix: PriorityMatrix,
        by: Actor,
        causation_id: str,
        description: str = "",
        channel: str = "portal",
        service: str = "",
        category: str = "",
        subcategory: str = "",
        at: datetime | None = None,
        source: str | None = None,
        external_ref: str | None = None,
    ) -> Incident:
        if not title.strip():
            raise InvalidValue("an incident needs a title")
        return cls(
            number=number,
            title=title,
            description=description,
            caller=caller,
            channel=parse_choice(Channel, "channel", channel),
            service=service,
            category=category,
            subcategory=subcategory,
            impact=impact,
            urgency=urgency,
            priority=matrix.priority(impact, urgency),
            by=by,
            causation_id=causation_id,
            at=at,
            source=source,
            external_ref=external_ref,
        )

    # -- guards ------------------------------------------------------------
    def _require(self, allowed: frozenset[str] | set[str], action: str) -> None:
        if self.state not in allowed:
            raise IllegalTransition(
                f"cannot {action} incident {self.number}: it is {self.state.replace('_', ' ')}"
            )

    def _require_open(self, action: str) -> None:
        self._require(OPEN_STATES, action)

    # -- assignment and escalation ----------------------------------------
    def assign(
        self,
        group: str,
        agent: str | None,
        by: Actor,
        causation_id: str,
        at: datetime | None = None,
    ) -> None:
        self._require_open("assign")
        if not group.strip():
            raise InvalidValue("an assignment needs an assignment group")
        if group == self.assignment_group and agent == self.assignee:
            raise IllegalTransition(f"incident {self.number} is already assigned to {group}")
        reassigned = self.assignment_group is not None and group != self.assignment_group
        self._assigned(group, agent, reassigned, by, causation_id, at)

    def record_source_assignment(
        self,
        group: str,
        agent: str | None,
        reassignment: bool,
        by: Actor,
        causation_id: str,
        at: datetime | None = None,
    ) -> None:
        """An assignment another ticketing tool made, recorded as it happened there.

        The source owns its ticket: it may move a resolved or closed one, and it judges
        whether a move was a reassignment (after an unassignment we never saw, say).
        """
        if not group.strip():
            raise InvalidValue("an assignment needs an assignment group")
        self._assigned(group, agent, reassignment, by, causation_id, at)

    @event("Assigned")
    def _assigned(
        self,
        group: str,
        agent: str | None,
        reassignment: bool,
        by: Actor,
        causation_id: str,
        at: datetime | None = None,
    ) -> None:
        self.assignment_group, self.assignee = group, agent
        self.reassignment_count += int(reassignment)

    def acknowledge(self, by: Actor, causation_id: str, at: datetime | None = None) -> None:
        if self.acknowledged_at is not None:
            raise IllegalTransition(f"incident {self.number} was already acknowledged")
        self._require({IncidentState.NEW}, "acknowledge")
        self._acknowledged(by, causation_id, at)

    @event("Acknowledged")
    def _acknowledged(self, by: Actor, causation_id: str, at: datetime | None = None) -> None:
        self.state = str(IncidentState.IN_PROGRESS)
        self.acknowledged_at = at or self.modified_on

    def escalate(
        self,
        kind: str,
        by: Actor,
        causation_id: str,
        group: str | None = None,
        reason: str = "",
        at: datetime | None = None,
    ) -> None:
        self._require_open("escalate")
        kind = parse_choice(EscalationKind, "escalation kind", kind)
        if kind == EscalationKind.HIERARCHICAL:
            if self.major:
                raise IllegalTransition(f"incident {self.number} is already a major incident")
            self._escalated(kind, None, self.tier, reason, by, causation_id, at)
            return
        tier = self._next_tier()
        target = group or self.assignment_group
        if not target:
            raise InvalidValue("a functional escalation needs a group to escalate to")
        self._escalated(kind, target, tier, reason, by, causation_id, at)

    def _next_tier(self) -> str:
        position = TIERS.index(self.tier)
        if position == len(TIERS) - 1:
            raise IllegalTransition(
                f"incident {self.number} is already at the top tier {self.tier}"
            )
        return TIERS[position + 1]

    @event("Escalated")
    def _escalated(
        self,
        kind: str,
        group: str | None,
        tier: str,
        reason: str,
        by: Actor,
        causation_id: str,
        at: datetime | None = None,
    ) -> None:
        if kind == EscalationKind.HIERARCHICAL:
            self.major = True
            return
        if group != self.assignment_group:
            self.reassignment_count += int(self.assignment_group is not None)
            self.assignment_group, self.assignee = group, None
        self.tier = tier

    # -- hold and resume ---------------------------------------------------
    def hold(
        self, reason: str, by: Actor, causation_id: str, note: str = "", at: datetime | None = None
    ) -> None:
        self._require({IncidentState.NEW, IncidentState.IN_PROGRESS}, "put on hold")
        self._held(parse_choice(HoldReason, "hold reason", reason), note, by, causation_id, at)

    @event("PutOnHold")
    def _held(
        self, reason: str, note: str, by: Actor, causation_id: str, at: datetime | None = None
    ) -> None:
        self.state, self.hold_reason = str(IncidentState.ON_HOLD), reason

    def resume(self, by: Actor, causation_id: str, at: datetime | None = None) -> None:
        self._require({IncidentState.ON_HOLD}, "resume")
        self._resumed(by, causation_id, at)

    @event("Resumed")
    def _resumed(self, by: Actor, causation_id: str, at: datetime | None = None) -> None:
        self.state, self.hold_reason = str(IncidentState.IN_PROGRESS), None

    # -- resolution and closure ---------------------------------------------
    def resolve(
        self, code: str, notes: str, by: Actor, causation_id: str, at: datetime | None = None
    ) -> None:
        self._require_open("resolve")
        if not code.strip():
            raise InvalidValue("a resolution needs a resolution code")
        self._resolved(code, notes, by, causation_id, at)

    @event("Resolved")
    def _resolved(
        self, code: str, notes: str, by: Actor, causation_id: str, at: datetime | None = None
    ) -> None:
        self.state, self.hold_reason = str(IncidentState.RESOLVED), None
        self.resolution_code, self.resolution_notes = code, notes
        self.resolved_at = at or self.modified_on

    def reopen(self, reason: str, by: Actor, causation_id: str, at: datetime | None = None) -> None:
        self._require({IncidentState.RESOLVED}, "reopen")
        self._reopened(reason, by, causation_id, at)

    def record_source_reopen(
        self, reason: str, by: Actor, causation_id: str, at: datetime | None = None
    ) -> None:
        """A reopen another ticketing tool made, recorded as it happened there, even of an
        incident closed here: the source owns its ticket."""
        self._require(
            {IncidentState.RESOLVED, IncidentState.CLOSED, IncidentState.CANCELLED}, "reopen"
        )
        self._reopened(reason, by, causation_id, at)

    @event("Reopened")
    def _reopened(
        self, reason: str, by: Actor, causation_id: str, at: datetime | None = None
    ) -> None:
        self.state = str(IncidentState.IN_PROGRESS)
        self.reopen_count += 1
        self.resolved_at = self.resolution_code = self.resolution_notes = None

    def close(
        self,
        by: Actor,
        causation_id: str,
        satisfaction: int | None = None,
        comment: str = "",
        at: datetime | None = None,
    ) -> None:
        self._require({IncidentState.RESOLVED}, "close")
        if satisfaction is not None and satisfaction not in range(1, 6):
            raise InvalidValue(f"satisfaction is a score from 1 to 5, not {satisfaction!r}")
        self._closed(satisfaction, comment, by, causation_id, at)

    @event("Closed")
    def _closed(
        self,
        satisfaction: int | None,
        comment: str,
        by: Actor,
        causation_id: str,
        at: datetime | None = None,
    ) -> None:
        self.state, self.satisfaction = str(IncidentState.CLOSED), satisfaction
        self.closed_at = at or self.modified_on

    def cancel(self, reason: str, by: Actor, causation_id: str, at: datetime | None = None) -> None:
        self._require_open("cancel")
        self._cancelled(reason, by, causation_id, at)

    @event("Cancelled")
    def _cancelled(
        self, reason: str, by: Actor, causation_id: str, at: datetime | None = None
    ) -> None:
        self.state, self.hold_reason = str(IncidentState.CANCELLED), None
        self.cancelled_at = at or self.modified_on

    # -- notes and classification --------------------------------------------
    def comment(
        self, text: str, public: bool, by: Actor, causation_id: str, at: datetime | None = None
    ) -> None:
        if not text.strip():
            raise InvalidValue("a comment needs text")
        self._commented(text, public, by, causation_id, at)

    @event("Commented")
    def _commented(
        self, text: str, public: bool, by: Actor, causation_id: str, at: datetime | None = None
    ) -> None:
        """Public comments reach the caller; the others are internal work notes."""

    def reprioritise(
        self,
        impact: int,
        urgency: int,
        reason: str,
        matrix: PriorityMatrix,
        by: Actor,
        causation_id: str,
        at: datetime | None = None,
    ) -> None:
        self._require_open("reprioritise")
        if (impact, urgency) == (self.impact, self.urgency):
            raise IllegalTransition(
                f"incident {self.number} already has impact {impact} and urgency {urgency}"
            )
        priority = matrix.priority(check_level("impact", impact), check_level("urgency", urgency))
        self._reprioritised(impact, urgency, priority, reason, by, causation_id, at)

    @event("Reprioritised")
    def _reprioritised(
        self,
        impact: int,
        urgency: int,
        priority: str,
        reason: str,
        by: Actor,
        causation_id: str,
        at: datetime | None = None,
    ) -> None:
        self.impact, self.urgency, self.priority = impact, urgency, priority

    def recategorise(
        self,
        category: str,
        subcategory: str,
        service: str | None,
        by: Actor,
        causation_id: str,
        at: datetime | None = None,
    ) -> None:
        self._require_open("recategorise")
        service = self.service if service is None else service
        if (category, subcategory, service) == (self.category, self.subcategory, self.service):
            raise IllegalTransition(f"incident {self.number} already has that categorisation")
        self._recategorised(category, subcategory, service, by, causation_id, at)

    @event("Recategorised")
    def _recategorised(
        self,
        category: str,
        subcategory: str,
        service: str,
        by: Actor,
        causation_id: str,
        at: datetime | None = None,
    ) -> None:
        self.category, self.subcategory, self.service = category, subcategory, service

    # -- service levels: recorded by the SLA scheduler when a deadline falls due ----------
    # Each (metric, cycle, threshold) warning and each (metric, cycle) breach is recorded
    # once: a second call raises IllegalTransition and records nothing. `cycle` numbers the
    # runs of one clock (1 today: a reopened ticket resumes its clock, it does not restart).
    def record_sla_warning(
        self,
        metric: str,
        threshold: int | float,
        policy_id: str,
        policy_version: int,
        due_at: datetime,
        by: Actor,
        causation_id: str,
        cycle: int = 1,
        at: datetime | None = None,
    ) -> None:
        self._require_sla_clock(metric, "record an SLA warning")
        key = f"{metric}/{cycle}/warning/{threshold}"
        if key in self._sla_marks():
            raise IllegalTransition(
                f"the {threshold}% {metric} warning of incident {self.number} was already recorded"
            )
        self._sla_warning_reached(
            metric, threshold, policy_id, policy_version, due_at, cycle, by, causation_id, at
        )

    @event("SlaWarningReached")
    def _sla_warning_reached(
        self,
        metric: str,
        threshold: int | float,
        policy_id: str,
        policy_version: int,
        due_at: datetime,
        cycle: int,
        by: Actor,
        causation_id: str,
        at: datetime | None = None,
    ) -> None:
        self.sla_marks = {**self._sla_marks(), f"{metric}/{cycle}/warning/{threshold}": True}

    def record_sla_breach(
        self,
        metric: str,
        policy_id: str,
        policy_version: int,
        due_at: datetime,
        by: Actor,
        causation_id: str,
        cycle: int = 1,
        at: datetime | None = None,
    ) -> None:
        self._require_sla_clock(metric, "record an SLA breach")
        if f"{metric}/{cycle}/breach" in self._sla_marks():
            raise IllegalTransition(
                f"the {metric} breach of incident {self.number} was already recorded"
            )
        self._sla_breached(metric, policy_id, policy_version, due_at, cycle, by, causation_id, at)

    @event("SlaBreached")
    def _sla_breached(
        self,
        metric: str,
        policy_id: str,
        policy_version: int,
        due_at: datetime,
        cycle: int,
        by: Actor,
        causation_id: str,
        at: datetime | None = None,
    ) -> None:
        self.sla_marks = {**self._sla_marks(), f"{metric}/{cycle}/breach": True}

    def _sla_marks(self) -> dict[str, bool]:
        # Incidents (and snapshots) from before SLA events simply have none yet.
        return getattr(self, "sla_marks", None) or {}

    def _require_sla_clock(self, metric: str, action: str) -> None:
        """A clock runs only while the ticket is open; the respond one until acknowledged."""
        self._require_open(action)
        if metric == "respond" and self.acknowledged_at is not None:
            raise IllegalTransition(
                f"cannot {action} for respond on incident {self.number}: "
                "it was already acknowledged"
            )
        if metric not in ("respond", "resolve") and not metric.startswith("ola:"):
            raise InvalidValue(f"unknown SLA metric {metric!r}: respond, resolve or ola:<group>")


# The caller is the incident's data subject; the free text of its events is about them.
PERSONAL_DATA = PersonalData(
    subject_field="caller",
    events={
        "Logged": ("title", "description", "caller"),
        "Escalated": ("reason",),
        "PutOnHold": ("note",),
        "Resolved": ("notes",),
        "Reopened": ("reason",),
        "Closed": ("comment",),
        "Cancelled": ("reason",),
        "Commented": ("text",),
        "Reprioritised": ("reason",),
    },
    snapshot=("title", "description", "caller", "resolution_notes"),
    people={"Assigned": ("agent",)},
    snapshot_people=("assignee",),
)
