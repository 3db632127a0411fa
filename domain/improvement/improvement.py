"""The Improvement aggregate: one continual improvement initiative (CSI register entry), from
proposal through approval and implementation to a verified closure.

Approval is bound to a plan version. The version counts every edit of what an approval
covers (design, goals, plan), so an approval names exactly what was approved; an edit after
approval takes the improvement back to designed, to be approved again. Verification
compares each goal's KPI over its baseline and review periods; the control table, the
inputs it was computed from and the verdict are recorded for audit.

State is plain data (str, int, float, bool, datetime, dicts and lists), so snapshots and
events round-trip through the store's JSON transcoder unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate, event

from domain.improvement.design import (
    DESIGN_FIELDS,
    Action,
    ActionKind,
    ActionStatus,
    CauseAnalysis,
    ControlRow,
    Design,
    Goal,
    Pinned,
    Plan,
    Verification,
    approval_gaps,
    cause_analysis,
    control_table,
    empty_plan,
    normalise_design,
    normalise_goals,
    normalise_pinned,
    normalise_plan,
    reason,
)
from domain.improvement.lifecycle import (
    APPROVED_STATES,
    VERDICTS,
    ImprovementState,
    Outcome,
    require,
)
from domain.shared_kernel.actor import Actor
from domain.shared_kernel.errors import IllegalTransition, InvalidValue
from domain.shared_kernel.events import StampedEvent
from domain.shared_kernel.personal_data import PersonalData
from domain.shared_kernel.value_checks import CheckedEvent, check_text, check_time

S = ImprovementState


class Improvement(Aggregate):
    """Each command records who acted (`by`) and what caused it (`causation_id`)."""

    # Events that record time passing (a review date reached), not a change by anyone: like
    # the incident's SLA notices, they should never make a caller's If-Match stale
    # (application/desk/practice.py, `clock_events`).
    CLOCK_EVENTS = frozenset({"ReviewReminded"})

    class Event(StampedEvent):
        pass

    class Proposed(CheckedEvent, Aggregate.Created):
        class_version = 1
        number: str
        design: Design
        by: Actor
        causation_id: str

    class Accepted(Event):
        note: str
        by: Actor
        causation_id: str

    class Declined(Event):
        reason: str
        by: Actor
        causation_id: str

    # A revision records the plan version it makes and whether it revokes an approval, so
    # read models need not know the rule.
    class DesignRevised(Event):
        design: Design
        plan_version: int
        revokes_approval: bool
        by: Actor
        causation_id: str

    class GoalsRevised(Event):
        goals: list[Goal]
        plan_version: int
        revokes_approval: bool
        by: Actor
        causation_id: str

    class PlanRevised(Event):
        plan: Plan
        plan_version: int
        revokes_approval: bool
        by: Actor
        causation_id: str

    class DesignSubmitted(Event):
        plan_version: int
        by: Actor
        causation_id: str

    class Approved(Event):
        plan_version: int
        note: str
        by: Actor
        causation_id: str

    class ImplementationStarted(Event):
        by: Actor
        causation_id: str

    class PutOnHold(Event):
        reason: str
        by: Actor
        causation_id: str

    class Resumed(Event):
        by: Actor
        causation_id: str

    class ActionCompleted(Event):
        action_id: str
        note: str
        by: Actor
        causation_id: str

    class ActionDropped(Event):
        action_id: str
        reason: str
        by: Actor
        causation_id: str

    class ImplementationCompleted(Event):
        by: Actor
        causation_id: str

    class VerificationRecorded(Event):
        verification: int  # 1 for the first; a later one supersedes it
        plan_version: int
        control_table: list[ControlRow]
        pinned: Pinned
        by: Actor
        causation_id: str

    class CauseAnalysed(Event):
        goal_id: str
        cause: str
        follow_up_measures: list[str]
        follow_up_improvement: str | None  # the id or number of the improvement it starts
        by: Actor
        causation_id: str

    class Closed(Event):
        verdict: str
        summary: str
        verification: int  # the verification the verdict rests on
        by: Actor
        causation_id: str

    class Withdrawn(Event):
        reason: str
        by: Actor
        causation_id: str

    # Recorded by a scheduler (an automation actor) when the review date passed without a
    # verification recorded since; once per review date.
    class ReviewReminded(Event):
        review_date: datetime  # the end of the last goal's review period
        goal_ids: list[str]  # the goals whose review period had ended
        by: Actor
        causation_id: str

    @event(Proposed)
    def __init__(self, number: str, design: Design, by: Actor, causation_id: str) -> None:
        self.number, self.design = number, design
        self.state = str(S.PROPOSED)
        self.outcome: str | None = None  # how it closed
        self.proposed_by = by.id
        self.goals: list[Goal] = []
        self.plan: Plan = empty_plan()
        self.plan_version = 0
        self.approved_version: int | None = None
        self.approved_by: str | None = None
        self.approved_at: datetime | None = None
        self.hold_reason: str | None = None
        self.reason: str | None = None  # why it was declined or withdrawn
        self.verification: Verification | None = None  # the latest: a verdict rests on it
        # By goal id; kept when a later verification is recorded, as causes seldom change.
        self.cause_analyses: dict[str, CauseAnalysis] = {}
        self.summary: str | None = None
        self.closed_at: datetime | None = None

    @classmethod
    def propose(
        cls, number: str, design: Mapping[str, Any], by: Actor, causation_id: str
    ) -> Improvement:
        return cls(number=number, design=normalise_design(design), by=by, causation_id=causation_id)

    def _require(self, action: str) -> None:
        require(action, self.state, self.number, self.outcome)

    # -- proposal --------------------------------------------------------------------------
    def accept(self, note: str, by: Actor, causation_id: str) -> None:
        self._require("accept")
        self._accepted(check_text("note", note.strip()), by, causation_id)

    @event(Accepted)
    def _accepted(self, note: str, by: Actor, causation_id: str) -> None:
        self.state = str(S.ACCEPTED)

    def decline(self, why: str, by: Actor, causation_id: str) -> None:
        self._require("decline")
        self._declined(reason("reason", why), by, causation_id)

    @event(Declined)
    def _declined(self, reason: str, by: Actor, causation_id: str) -> None:
        self.state, self.reason = str(S.DECLINED), reason
        self.closed_at = self.modified_on

    # -- design, goals and plan: each edit a new plan version -------------------------------
    def revise_design(self, design: Mapping[str, Any], by: Actor, causation_id: str) -> None:
        """Replace the whole design."""
        self._require("revise_design")
        clean = normalise_design(design)
        self._require_change(clean == self.design, "design")
        self._design_revised(clean, *self._next_version(), by, causation_id)

    def amend_design(self, changes: Mapping[str, Any], by: Actor, causation_id: str) -> None:
        """Change only the fields given (a PATCH)."""
        self._require("revise_design")
        unknown = sorted(str(key) for key in changes if key not in DESIGN_FIELDS)
        if unknown:
            raise InvalidValue(f"design has unknown fields: {', '.join(unknown)}")
        self.revise_design({**self.design, **changes}, by, causation_id)

    @event(DesignRevised)
    def _design_revised(
        self,
        design: Design,
        plan_version: int,
        revokes_approval: bool,
        by: Actor,
        causation_id: str,
    ) -> None:
        self.design = design
        self._new_version(plan_version, revokes_approval)

    def revise_goals(
        self, goals: Sequence[Mapping[str, Any]], by: Actor, causation_id: str
    ) -> None:
        """Replace the goals (one or more)."""
        self._require("revise_goals")
        clean = normalise_goals(goals)
        self._require_change(clean == self.goals, "goals")
        self._goals_revised(clean, *self._next_version(), by, causation_id)

    @event(GoalsRevised)
    def _goals_revised(
        self,
        goals: list[Goal],
        plan_version: int,
        revokes_approval: bool,
        by: Actor,
        causation_id: str,
    ) -> None:
        self.goals = goals
        self._new_version(plan_version, revokes_approval)

    def revise_plan(self, plan: Mapping[str, Any], by: Actor, causation_id: str) -> None:
        """Replace the actions and the RACI; an action keeps its progress by its id."""
        self._require("revise_plan")
        clean = normalise_plan(plan, self.plan)
        self._require_change(clean == self.plan, "plan")
        self._plan_revised(clean, *self._next_version(), by, causation_id)

    @event(PlanRevised)
    def _plan_revised(
        self, plan: Plan, plan_version: int, revokes_approval: bool, by: Actor, causation_id: str
    ) -> None:
        self.plan = plan
        self._new_version(plan_version, revokes_approval)

    def _require_change(self, unchanged: bool, what: str) -> None:
        if unchanged:
            raise IllegalTransition(
                f"improvement {self.number} already has that {what}; nothing to change"
            )

    def _next_version(self) -> tuple[int, bool]:
        """The plan version an edit makes, and whether it revokes an approval."""
        return self.plan_version + 1, self.state in APPROVED_STATES

    def _new_version(self, plan_version: int, revokes_approval: bool) -> None:
        self.plan_version = plan_version
        if revokes_approval:
            self.state, self.hold_reason = str(S.DESIGNED), None
            self.approved_version = self.approved_by = self.approved_at = None

    # -- approval ----------------------------------------------------------------------------
    def submit_design(self, by: Actor, causation_id: str) -> None:
        """Ready for the service management owner's approval."""
        self._require("submit_design")
        self._require_complete("submit the design of")
        self._design_submitted(self.plan_version, by, causation_id)

    @event(DesignSubmitted)
    def _design_submitted(self, plan_version: int, by: Actor, causation_id: str) -> None:
        self.state = str(S.DESIGNED)

    def approve(self, plan_version: int, note: str, by: Actor, causation_id: str) -> None:
        """Approve the plan version the approver saw; a later one needs its own approval."""
        self._require("approve")
        if plan_version != self.plan_version or isinstance(plan_version, bool):
            raise IllegalTransition(
                f"cannot approve plan version {plan_version!r} of improvement {self.number}: "
                f"the current one is {self.plan_version}; review it and approve that"
            )
        self._require_complete("approve")
        self._approved(plan_version, check_text("note", note.strip()), by, causation_id)

    @event(Approved)
    def _approved(self, plan_version: int, note: str, by: Actor, causation_id: str) -> None:
        self.state, self.approved_version = str(S.APPROVED), plan_version
        self.approved_by, self.approved_at = by.id, self.modified_on

    def _require_complete(self, verb: str) -> None:
        gaps = approval_gaps(self.design, self.goals, self.plan)
        if gaps:
            raise IllegalTransition(
                f"cannot {verb} improvement {self.number}: it needs {'; '.join(gaps)}"
            )

    # -- implementation ----------------------------------------------------------------------
    def start_implementation(self, by: Actor, causation_id: str) -> None:
        self._require("start_implementation")
        self._implementation_started(by, causation_id)

    @event(ImplementationStarted)
    def _implementation_started(self, by: Actor, causation_id: str) -> None:
        self.state = str(S.IN_IMPLEMENTATION)

    def hold(self, why: str, by: Actor, causation_id: str) -> None:
        self._require("hold")
        self._put_on_hold(reason("reason", why), by, causation_id)

    @event(PutOnHold)
    def _put_on_hold(self, reason: str, by: Actor, causation_id: str) -> None:
        self.state, self.hold_reason = str(S.ON_HOLD), reason

    def resume(self, by: Actor, causation_id: str) -> None:
        self._require("resume")
        self._resumed(by, causation_id)

    @event(Resumed)
    def _resumed(self, by: Actor, causation_id: str) -> None:
        self.state, self.hold_reason = str(S.IN_IMPLEMENTATION), None

    def complete_action(self, action_id: str, note: str, by: Actor, causation_id: str) -> None:
        self._require("complete_action")
        self._open_action(action_id)
        self._action_completed(action_id, check_text("note", note.strip()), by, causation_id)

    @event(ActionCompleted)
    def _action_completed(self, action_id: str, note: str, by: Actor, causation_id: str) -> None:
        self._set_action(action_id, str(ActionStatus.DONE), "")

    def drop_action(self, action_id: str, why: str, by: Actor, causation_id: str) -> None:
        """An action no longer needed; the knowledge hand-over never is (revise the plan)."""
        self._require("drop_action")
        action = self._open_action(action_id)
        if action["kind"] == ActionKind.KNOWLEDGE_HANDOVER:
            raise IllegalTransition(
                f"the knowledge hand-over {action_id!r} of improvement {self.number} "
                "cannot be dropped; revise the plan to replace it"
            )
        self._action_dropped(action_id, reason("reason", why), by, causation_id)

    @event(ActionDropped)
    def _action_dropped(self, action_id: str, reason: str, by: Actor, causation_id: str) -> None:
        self._set_action(action_id, str(ActionStatus.DROPPED), reason)

    def _open_action(self, action_id: str) -> Action:
        action = next((a for a in self.plan["actions"] if a["id"] == action_id), None)
        if action is None:
            raise InvalidValue(f"action_id: improvement {self.number} has no action {action_id!r}")
        if action["status"] != ActionStatus.OPEN:
            raise IllegalTransition(
                f"action {action_id!r} of improvement {self.number} is already {action['status']}"
            )
        return action

    def _set_action(self, action_id: str, status: str, why: str) -> None:
        """A new plan value: the events that recorded the old one share its parts."""
        actions = [
            _progress(a, status, why) if a["id"] == action_id else a for a in self.plan["actions"]
        ]
        self.plan = {"actions": actions, "raci": self.plan["raci"]}

    def complete_implementation(self, by: Actor, causation_id: str) -> None:
        """Every action done or dropped: the improvement is ready to be reviewed."""
        self._require("complete_implementation")
        still_open = [a["id"] for a in self.plan["actions"] if a["status"] == ActionStatus.OPEN]
        if still_open:
            raise IllegalTransition(
                f"cannot complete the implementation of improvement {self.number}: "
                f"actions still open: {', '.join(still_open)}"
            )
        self._implementation_completed(by, causation_id)

    @event(ImplementationCompleted)
    def _implementation_completed(self, by: Actor, causation_id: str) -> None:
        self.state = str(S.IN_REVIEW)

    # -- review ----------------------------------------------------------------------------
    def record_verification(
        self,
        results: Sequence[Mapping[str, Any]],
        pinned: Mapping[str, Any],
        by: Actor,
        causation_id: str,
    ) -> None:
        """The measured figures per goal; the domain judges target and met."""
        self._require("record_verification")
        table, pins = control_table(self.goals, results), normalise_pinned(pinned)
        number = self._verification_number() + 1
        self._verification_recorded(number, self.plan_version, table, pins, by, causation_id)

    @event(VerificationRecorded)
    def _verification_recorded(
        self,
        verification: int,
        plan_version: int,
        control_table: list[ControlRow],
        pinned: Pinned,
        by: Actor,
        causation_id: str,
    ) -> None:
        self.verification = {
            "number": verification,
            "control_table": control_table,
            "pinned": pinned,
            "by": by.id,
            "at": self.modified_on,
        }

    def record_cause_analysis(
        self,
        goal_id: str,
        cause: str,
        follow_up_measures: Sequence[str],
        follow_up_improvement: str | None,
        by: Actor,
        causation_id: str,
    ) -> None:
        """Why a goal was not met and what follows; a later one for the goal replaces it."""
        self._require("record_cause_analysis")
        parts = cause_analysis(goal_id, cause, follow_up_measures, follow_up_improvement)
        if self._row(parts[0])["met"]:
            raise IllegalTransition(
                f"goal {goal_id!r} of improvement {self.number} was met; "
                "a cause analysis is for an unmet goal"
            )
        self._cause_analysed(*parts, by, causation_id)

    def _row(self, goal_id: str) -> ControlRow:
        if self.verification is None:
            raise IllegalTransition(f"improvement {self.number} has no verification yet")
        rows = self.verification["control_table"]
        row = next((r for r in rows if r["goal_id"] == goal_id), None)
        if row is None:
            raise InvalidValue(f"goal_id: improvement {self.number} has no goal {goal_id!r}")
        return row

    @event(CauseAnalysed)
    def _cause_analysed(
        self,
        goal_id: str,
        cause: str,
        follow_up_measures: list[str],
        follow_up_improvement: str | None,
        by: Actor,
        causation_id: str,
    ) -> None:
        analysis: CauseAnalysis = {
            "cause": cause,
            "follow_up_measures": follow_up_measures,
            "follow_up_improvement": follow_up_improvement,
        }
        self.cause_analyses = {**self.cause_analyses, goal_id: analysis}

    def close(self, verdict: str, summary: str, by: Actor, causation_id: str) -> None:
        """The verdict on the latest verification; every unmet goal needs its cause analysed."""
        self._require("close")
        if verdict not in VERDICTS:  # withdrawn is not a verdict: withdraw instead
            raise InvalidValue(f"verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")
        verdict = str(Outcome(verdict))
        rows = self._verified_rows()
        self._check_verdict(verdict, [r["met"] for r in rows])
        number = self._verification_number()
        self._closed(verdict, check_text("summary", summary.strip()), number, by, causation_id)

    def _verification_number(self) -> int:
        return 0 if self.verification is None else self.verification["number"]

    def _verified_rows(self) -> list[ControlRow]:
        if self.verification is None:
            raise IllegalTransition(
                f"cannot close improvement {self.number}: record a verification first"
            )
        rows = self.verification["control_table"]
        unexplained = [r["goal_id"] for r in rows if not r["met"]]
        unexplained = [g for g in unexplained if g not in self.cause_analyses]
        if unexplained:
            raise IllegalTransition(
                f"cannot close improvement {self.number}: unmet goals need a cause "
                f"analysis first: {', '.join(unexplained)}"
            )
        return rows

    def _check_verdict(self, verdict: str, met: list[bool]) -> None:
        """A verdict may be harsher than the figures, never kinder."""
        if verdict == Outcome.SUCCESSFUL and not all(met):
            wrong = "successful: not every goal was met"
        elif verdict == Outcome.PARTLY_SUCCESSFUL and not any(met):
            wrong = "partly successful: no goal was met"
        else:
            return
        raise IllegalTransition(f"improvement {self.number} cannot close as {wrong}")

    @event(Closed)
    def _closed(
        self, verdict: str, summary: str, verification: int, by: Actor, causation_id: str
    ) -> None:
        self.state, self.outcome, self.summary = str(S.CLOSED), verdict, summary
        self.closed_at = self.modified_on

    def withdraw(self, why: str, by: Actor, causation_id: str) -> None:
        """Stop the improvement wherever it is, short of closed or declined."""
        self._require("withdraw")
        self._withdrawn(reason("reason", why), by, causation_id)

    @event(Withdrawn)
    def _withdrawn(self, reason: str, by: Actor, causation_id: str) -> None:
        self.state, self.outcome = str(S.CLOSED), str(Outcome.WITHDRAWN)
        self.reason, self.hold_reason = reason, None
        self.closed_at = self.modified_on

    # -- review reminders: recorded by a scheduler when the review date passes -------------
    def review_date(self) -> datetime | None:
        """When the last goal's review period ends: from then on every figure can be
        verified (the register's `review_date`). None without goals."""
        ends = [goal["review"]["end"] for goal in self.goals]
        return max(ends) if ends else None

    def remind_review(self, now: datetime, by: Actor, causation_id: str) -> None:
        """The review date was reached at `now` (the scheduler's clock) and no verification
        was recorded since: record a reminder. Refused (IllegalTransition, nothing
        recorded) when the improvement is closed or declined, has no goals, its review
        date is still to come, the review date was already reminded, or a verification
        was recorded at or after the review date."""
        self._require("remind_review")
        due = self.review_date()
        if due is None:
            raise IllegalTransition(
                f"improvement {self.number} has no review date: none of its goals has a "
                "review period yet"
            )
        now = check_time("now", now)
        if now < due:
            raise IllegalTransition(
                f"the review date of improvement {self.number} is {due.isoformat()}; "
                f"it was not reached at {now.isoformat()}"
            )
        if due in self._reminded_reviews():
            raise IllegalTransition(
                f"the review of improvement {self.number} due {due.isoformat()} "
                "was already reminded"
            )
        if self.verification is not None and self.verification["at"] >= due:
            raise IllegalTransition(
                f"improvement {self.number} was verified at "
                f"{self.verification['at'].isoformat()}, after its review date "
                f"{due.isoformat()}: nothing to remind"
            )
        ended = [goal["id"] for goal in self.goals if goal["review"]["end"] <= now]
        self._review_reminded(due, ended, by, causation_id)

    def _reminded_reviews(self) -> list[datetime]:
        # Improvements (and snapshots) from before reminders existed simply have none yet.
        return getattr(self, "reminded_reviews", None) or []

    @event(ReviewReminded)
    def _review_reminded(
        self, review_date: datetime, goal_ids: list[str], by: Actor, causation_id: str
    ) -> None:
        self.reminded_reviews = [*self._reminded_reviews(), review_date]


def _progress(action: Action, status: str, why: str) -> Action:
    updated = action.copy()
    updated["status"], updated["reason"] = status, why
    return updated


# An improvement has no data subject of its own; the people it names (its owner, its team,
# the owners of its actions, the RACI's persons, who proposed and approved it) are recorded
# as their person tokens (a RACI party that is a team is not a person's data).
_DESIGN_PEOPLE = ("design.owner", "design.team[]")
_PLAN_PEOPLE = ("plan.actions[].owner", "plan.raci[kind=person].party")
PERSONAL_DATA = PersonalData(
    subject_field="",
    people={
        "Proposed": _DESIGN_PEOPLE,
        "DesignRevised": _DESIGN_PEOPLE,
        "PlanRevised": _PLAN_PEOPLE,
    },
    snapshot_people=(
        *_DESIGN_PEOPLE,
        *_PLAN_PEOPLE,
        "proposed_by",
        "approved_by",
        "verification.by",
    ),
)
