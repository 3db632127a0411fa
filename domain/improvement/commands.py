"""Commands: what an improvement owner, a service management owner or a reviewer asks of an
improvement.

HTTP routers (and, for review reminders, a scheduler) build these objects and the one
application service runs them (domain/shared_kernel/commands.py says how). Each command's
`action` names the lifecycle step it takes (domain/improvement/lifecycle.py, STEPS).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from domain.improvement.improvement import Improvement
from domain.shared_kernel.command_context import Context
from domain.shared_kernel.commands import Rules

PRACTICE = "improvement"


@dataclass(frozen=True)
class ProposeImprovement:
    """A new improvement: its design, of which only `name` and `area` are required."""

    design: Mapping[str, Any]

    practice: ClassVar[str] = PRACTICE

    def run(self, number: str | None, ctx: Context, rules: Rules) -> Improvement:
        return Improvement.propose(number or "", self.design, ctx.by, ctx.causation_id)


class ImprovementCommand:
    action: ClassVar[str]
    practice: ClassVar[str] = PRACTICE

    def run(self, improvement: Improvement, ctx: Context, rules: Rules) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class AcceptImprovement(ImprovementCommand):
    action = "accept"
    note: str = ""

    def run(self, improvement: Improvement, ctx: Context, rules: Rules) -> None:
        improvement.accept(self.note, ctx.by, ctx.causation_id)


@dataclass(frozen=True)
class DeclineImprovement(ImprovementCommand):
    action = "decline"
    reason: str

    def run(self, improvement: Improvement, ctx: Context, rules: Rules) -> None:
        improvement.decline(self.reason, ctx.by, ctx.causation_id)


@dataclass(frozen=True)
class ReviseDesign(ImprovementCommand):
    """The whole design (PUT), or only the fields given (PATCH)."""

    action = "revise_design"
    design: Mapping[str, Any]
    partial: bool = False

    def run(self, improvement: Improvement, ctx: Context, rules: Rules) -> None:
        change = improvement.amend_design if self.partial else improvement.revise_design
        change(self.design, ctx.by, ctx.causation_id)


@dataclass(frozen=True)
class ReviseGoals(ImprovementCommand):
    action = "revise_goals"
    goals: Sequence[Mapping[str, Any]]

    def run(self, improvement: Improvement, ctx: Context, rules: Rules) -> None:
        improvement.revise_goals(self.goals, ctx.by, ctx.causation_id)


@dataclass(frozen=True)
class RevisePlan(ImprovementCommand):
    """The actions (without their progress) and the RACI."""

    action = "revise_plan"
    plan: Mapping[str, Any]

    def run(self, improvement: Improvement, ctx: Context, rules: Rules) -> None:
        improvement.revise_plan(self.plan, ctx.by, ctx.causation_id)


@dataclass(frozen=True)
class SubmitDesign(ImprovementCommand):
    action = "submit_design"

    def run(self, improvement: Improvement, ctx: Context, rules: Rules) -> None:
        improvement.submit_design(ctx.by, ctx.causation_id)


@dataclass(frozen=True)
class ApproveImprovement(ImprovementCommand):
    """`plan_version` is the one the approver reviewed (the improvement's `plan_version`)."""

    action = "approve"
    plan_version: int
    note: str = ""

    def run(self, improvement: Improvement, ctx: Context, rules: Rules) -> None:
        improvement.approve(self.plan_version, self.note, ctx.by, ctx.causation_id)


@dataclass(frozen=True)
class StartImplementation(ImprovementCommand):
    action = "start_implementation"

    def run(self, improvement: Improvement, ctx: Context, rules: Rules) -> None:
        improvement.start_implementation(ctx.by, ctx.causation_id)


@dataclass(frozen=True)
class HoldImprovement(ImprovementCommand):
    action = "hold"
    reason: str

    def run(self, improvement: Improvement, ctx: Context, rules: Rules) -> None:
        improvement.hold(self.reason, ctx.by, ctx.causation_id)


@dataclass(frozen=True)
class ResumeImprovement(ImprovementCommand):
    action = "resume"

    def run(self, improvement: Improvement, ctx: Context, rules: Rules) -> None:
        improvement.resume(ctx.by, ctx.causation_id)


@dataclass(frozen=True)
class CompleteAction(ImprovementCommand):
    action = "complete_action"
    action_id: str
    note: str = ""

    def run(self, improvement: Improvement, ctx: Context, rules: Rules) -> None:
        improvement.complete_action(self.action_id, self.note, ctx.by, ctx.causation_id)


@dataclass(frozen=True)
class DropAction(ImprovementCommand):
    action = "drop_action"
    action_id: str
    reason: str

    def run(self, improvement: Improvement, ctx: Context, rules: Rules) -> None:
        improvement.drop_action(self.action_id, self.reason, ctx.by, ctx.causation_id)


@dataclass(frozen=True)
class CompleteImplementation(ImprovementCommand):
    action = "complete_implementation"

    def run(self, improvement: Improvement, ctx: Context, rules: Rules) -> None:
        improvement.complete_implementation(ctx.by, ctx.causation_id)


@dataclass(frozen=True)
class RecordVerification(ImprovementCommand):
    """The measured figures per goal and the inputs they were computed from; the
    application computes them from the KPI read model."""

    action = "record_verification"
    results: Sequence[Mapping[str, Any]]
    pinned: Mapping[str, Any]

    def run(self, improvement: Improvement, ctx: Context, rules: Rules) -> None:
        improvement.record_verification(self.results, self.pinned, ctx.by, ctx.causation_id)


@dataclass(frozen=True)
class RecordCauseAnalysis(ImprovementCommand):
    action = "record_cause_analysis"
    goal_id: str
    cause: str
    follow_up_measures: Sequence[str] = field(default_factory=list)
    follow_up_improvement: str | None = None

    def run(self, improvement: Improvement, ctx: Context, rules: Rules) -> None:
        improvement.record_cause_analysis(
            self.goal_id,
            self.cause,
            self.follow_up_measures,
            self.follow_up_improvement,
            ctx.by,
            ctx.causation_id,
        )


@dataclass(frozen=True)
class CloseImprovement(ImprovementCommand):
    action = "close"
    verdict: str
    summary: str = ""

    def run(self, improvement: Improvement, ctx: Context, rules: Rules) -> None:
        improvement.close(self.verdict, self.summary, ctx.by, ctx.causation_id)


@dataclass(frozen=True)
class WithdrawImprovement(ImprovementCommand):
    action = "withdraw"
    reason: str

    def run(self, improvement: Improvement, ctx: Context, rules: Rules) -> None:
        improvement.withdraw(self.reason, ctx.by, ctx.causation_id)


@dataclass(frozen=True)
class RemindReview(ImprovementCommand):
    """The review date passed without a verification: a reminder, issued by a scheduler
    (application/improvement/review_reminders.py), never over HTTP. `now` is the
    scheduler's clock; without it, the time the context says it happened, else now."""

    action = "remind_review"
    now: datetime | None = None

    def run(self, improvement: Improvement, ctx: Context, rules: Rules) -> None:
        now = self.now or ctx.occurred_at or datetime.now(UTC)
        improvement.remind_review(now, ctx.by, ctx.causation_id)


ACTIONS: dict[str, type[ImprovementCommand]] = {
    cls.action: cls
    for cls in (
        AcceptImprovement,
        DeclineImprovement,
        ReviseDesign,
        ReviseGoals,
        RevisePlan,
        SubmitDesign,
        ApproveImprovement,
        StartImplementation,
        HoldImprovement,
        ResumeImprovement,
        CompleteAction,
        DropAction,
        CompleteImplementation,
        RecordVerification,
        RecordCauseAnalysis,
        CloseImprovement,
        WithdrawImprovement,
        RemindReview,
    )
}
