"""Commands: what an agent, a rule or an upstream system asks of an incident.

HTTP routers, the inbound mappers and the SLA scheduler build these same objects
(domain/shared_kernel/commands.py says how they are run).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from domain.incident.incident import Incident
from domain.shared_kernel.command_context import Context
from domain.shared_kernel.commands import Rules


@dataclass(frozen=True)
class LogIncident:
    title: str
    caller: str
    impact: int
    urgency: int
    description: str = ""
    channel: str = "portal"
    service: str = ""
    category: str = ""
    subcategory: str = ""
    source: str | None = None  # the upstream system, for tickets that came from elsewhere
    external_ref: str | None = None  # the ticket's number in that system

    practice: ClassVar[str] = "incident"

    def run(self, number: str | None, ctx: Context, rules: Rules) -> Incident:
        return Incident.log(
            number=number or "",
            matrix=rules.matrix,
            by=ctx.by,
            causation_id=ctx.causation_id,
            at=ctx.occurred_at,
            **self.__dict__,
        )


class IncidentCommand:
    action: ClassVar[str]
    practice: ClassVar[str] = "incident"

    def run(self, incident: Incident, ctx: Context, rules: Rules) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class Assign(IncidentCommand):
    action = "assign"
    group: str
    agent: str | None = None

    def run(self, incident: Incident, ctx: Context, rules: Rules) -> None:
        incident.assign(self.group, self.agent, ctx.by, ctx.causation_id, at=ctx.occurred_at)


@dataclass(frozen=True)
class Acknowledge(IncidentCommand):
    action = "acknowledge"

    def run(self, incident: Incident, ctx: Context, rules: Rules) -> None:
        incident.acknowledge(ctx.by, ctx.causation_id, at=ctx.occurred_at)


@dataclass(frozen=True)
class Escalate(IncidentCommand):
    action = "escalate"
    kind: str = "functional"
    group: str | None = None
    reason: str = ""

    def run(self, incident: Incident, ctx: Context, rules: Rules) -> None:
        incident.escalate(
            self.kind,
            ctx.by,
            ctx.causation_id,
            group=self.group,
            reason=self.reason,
            at=ctx.occurred_at,
        )


@dataclass(frozen=True)
class Hold(IncidentCommand):
    action = "hold"
    reason: str
    note: str = ""

    def run(self, incident: Incident, ctx: Context, rules: Rules) -> None:
        incident.hold(self.reason, ctx.by, ctx.causation_id, note=self.note, at=ctx.occurred_at)


@dataclass(frozen=True)
class Resume(IncidentCommand):
    action = "resume"

    def run(self, incident: Incident, ctx: Context, rules: Rules) -> None:
        incident.resume(ctx.by, ctx.causation_id, at=ctx.occurred_at)


@dataclass(frozen=True)
class Resolve(IncidentCommand):
    action = "resolve"
    code: str
    notes: str = ""

    def run(self, incident: Incident, ctx: Context, rules: Rules) -> None:
        incident.resolve(self.code, self.notes, ctx.by, ctx.causation_id, at=ctx.occurred_at)


@dataclass(frozen=True)
class Reopen(IncidentCommand):
    action = "reopen"
    reason: str = ""

    def run(self, incident: Incident, ctx: Context, rules: Rules) -> None:
        incident.reopen(self.reason, ctx.by, ctx.causation_id, at=ctx.occurred_at)


@dataclass(frozen=True)
class Close(IncidentCommand):
    action = "close"
    satisfaction: int | None = None
    comment: str = ""

    def run(self, incident: Incident, ctx: Context, rules: Rules) -> None:
        incident.close(
            ctx.by,
            ctx.causation_id,
            satisfaction=self.satisfaction,
            comment=self.comment,
            at=ctx.occurred_at,
        )


@dataclass(frozen=True)
class Cancel(IncidentCommand):
    action = "cancel"
    reason: str = ""

    def run(self, incident: Incident, ctx: Context, rules: Rules) -> None:
        incident.cancel(self.reason, ctx.by, ctx.causation_id, at=ctx.occurred_at)


@dataclass(frozen=True)
class Comment(IncidentCommand):
    action = "comment"
    text: str
    public: bool = False

    def run(self, incident: Incident, ctx: Context, rules: Rules) -> None:
        incident.comment(self.text, self.public, ctx.by, ctx.causation_id, at=ctx.occurred_at)


@dataclass(frozen=True)
class Reprioritise(IncidentCommand):
    action = "reprioritise"
    impact: int
    urgency: int
    reason: str = ""

    def run(self, incident: Incident, ctx: Context, rules: Rules) -> None:
        incident.reprioritise(
            self.impact,
            self.urgency,
            self.reason,
            rules.matrix,
            ctx.by,
            ctx.causation_id,
            at=ctx.occurred_at,
        )


@dataclass(frozen=True)
class Recategorise(IncidentCommand):
    action = "recategorise"
    category: str
    subcategory: str = ""
    service: str | None = None

    def run(self, incident: Incident, ctx: Context, rules: Rules) -> None:
        incident.recategorise(
            self.category,
            self.subcategory,
            self.service,
            ctx.by,
            ctx.causation_id,
            at=ctx.occurred_at,
        )


@dataclass(frozen=True)
class RecordSourceAssignment(IncidentCommand):
    """An assignment another ticketing tool made; it judges whether it was a reassignment."""

    action = "record_source_assignment"
    group: str
    agent: str | None
    reassignment: bool

    def run(self, incident: Incident, ctx: Context, rules: Rules) -> None:
        incident.record_source_assignment(
            self.group, self.agent, self.reassignment, ctx.by, ctx.causation_id, at=ctx.occurred_at
        )


@dataclass(frozen=True)
class RecordSourceReopen(IncidentCommand):
    """A reopen another ticketing tool made, even of an incident closed here."""

    action = "record_source_reopen"
    reason: str

    def run(self, incident: Incident, ctx: Context, rules: Rules) -> None:
        incident.record_source_reopen(self.reason, ctx.by, ctx.causation_id, at=ctx.occurred_at)


ACTIONS: dict[str, type[IncidentCommand]] = {
    cls.action: cls
    for cls in (
        Assign,
        Acknowledge,
        Escalate,
        Hold,
        Resume,
        Resolve,
        Reopen,
        Close,
        Cancel,
        Comment,
        Reprioritise,
        Recategorise,
    )
}


@dataclass(frozen=True)
class RecordSlaWarning(IncidentCommand):
    action = "record_sla_warning"
    metric: str
    threshold: int | float
    policy_id: str
    policy_version: int
    due_at: datetime

    def run(self, incident: Incident, ctx: Context, rules: Rules) -> None:
        incident.record_sla_warning(
            self.metric,
            self.threshold,
            self.policy_id,
            self.policy_version,
            self.due_at,
            ctx.by,
            ctx.causation_id,
        )


@dataclass(frozen=True)
class RecordSlaBreach(IncidentCommand):
    action = "record_sla_breach"
    metric: str
    policy_id: str
    policy_version: int
    due_at: datetime

    def run(self, incident: Incident, ctx: Context, rules: Rules) -> None:
        incident.record_sla_breach(
            self.metric, self.policy_id, self.policy_version, self.due_at, ctx.by, ctx.causation_id
        )
