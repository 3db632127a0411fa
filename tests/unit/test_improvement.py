"""The Improvement aggregate's lifecycle: every step, every refusal, approval bound to a plan
version, withdrawal from every state, the closing verdicts and who acted.

The builders here are shared by tests/unit/test_improvement_*.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain.improvement.commands import (
    ACTIONS,
    AcceptImprovement,
    ApproveImprovement,
    CloseImprovement,
    CompleteAction,
    CompleteImplementation,
    DeclineImprovement,
    DropAction,
    HoldImprovement,
    ImprovementCommand,
    ProposeImprovement,
    RecordCauseAnalysis,
    RecordVerification,
    RemindReview,
    ResumeImprovement,
    ReviseDesign,
    ReviseGoals,
    RevisePlan,
    StartImplementation,
    SubmitDesign,
    WithdrawImprovement,
)
from domain.improvement.improvement import Improvement
from domain.improvement.lifecycle import LIVE_STATES, STEPS
from domain.shared_kernel.actor import Actor
from domain.shared_kernel.errors import IllegalTransition, InvalidValue
from tests.builders import RULES, ctx

NUMBER = "CSI0001001"
PROPOSER = Actor("paul")
OWNER = Actor("olivia")  # the improvement owner
SMO = Actor("sam")  # the service management owner, who approves
REVIEWER = Actor("rita")
JAN, FEB, APR, MAY = (datetime(2026, m, 1, tzinfo=UTC) for m in (1, 2, 4, 5))


# -- builders ---------------------------------------------------------------------------------


def design(**overrides: object) -> dict:
    return {"name": "Faster first response", "area": "process", "owner": "olivia", **overrides}


def goal(**overrides: object) -> dict:
    return {
        "id": "G1",
        "kpi": "mtta_hours",
        "direction": "decrease",
        "target": {"kind": "relative", "value": 0.2},
        "baseline": {"start": JAN, "end": FEB},
        "review": {"start": APR, "end": MAY},
        **overrides,
    }


def action(ident: str, due: str, **overrides: object) -> dict:
    return {"id": ident, "title": f"do {ident}", "owner": "olivia", "due": due, **overrides}


def plan(**overrides: object) -> dict:
    return {
        "actions": [
            action("A1", "2026-03-01"),
            action("A2", "2026-03-15", kind="knowledge_handover"),
        ],
        "raci": [
            {"party": "olivia", "role": "accountable"},
            {"party": "service-desk", "kind": "team", "role": "responsible"},
        ],
        **overrides,
    }


def figures(baseline: float | None, review: float | None, goal_id: str = "G1") -> dict:
    return {
        "goal_id": goal_id,
        "baseline": {"value": baseline, "count": 40},
        "review": {"value": review, "count": 50},
    }


PINNED = {"log_position": 1234, "kpi_definitions_version": "2026-01"}


def verification(*rows: dict) -> RecordVerification:
    return RecordVerification(results=list(rows) or [figures(3.0, 2.0)], pinned=PINNED)


def propose(by: Actor = PROPOSER, **overrides: object) -> Improvement:
    return ProposeImprovement(design(**overrides)).run(NUMBER, ctx(by, "req-propose"), RULES)


def run(improvement: Improvement, *commands: ImprovementCommand, by: Actor = OWNER) -> Improvement:
    """Run commands in turn, each with its own causation id."""
    for step, command in enumerate(commands, start=improvement.version + 1):
        command.run(improvement, ctx(by, f"req-{step}"), RULES)
    return improvement


def through(commands: list[ImprovementCommand]) -> Improvement:
    return run(propose(), *commands)


# A path to each state; `withdrawn` is closed with the outcome withdrawn.
TO_DESIGNED: list[ImprovementCommand] = [
    AcceptImprovement(note="worth it"),
    ReviseGoals([goal()]),
    RevisePlan(plan()),
    SubmitDesign(),
]
TO_APPROVED = [*TO_DESIGNED, ApproveImprovement(plan_version=2)]
TO_IMPLEMENTATION = [*TO_APPROVED, StartImplementation()]
TO_REVIEW = [
    *TO_IMPLEMENTATION,
    CompleteAction("A1"),
    CompleteAction("A2", note="article KB0042"),
    CompleteImplementation(),
]
PATHS: dict[str, list[ImprovementCommand]] = {
    "proposed": [],
    "accepted": TO_DESIGNED[:1],
    "declined": [DeclineImprovement(reason="duplicate of CSI0000999")],
    "designed": TO_DESIGNED,
    "approved": TO_APPROVED,
    "in_implementation": TO_IMPLEMENTATION,
    "on_hold": [*TO_IMPLEMENTATION, HoldImprovement(reason="budget freeze")],
    "in_review": TO_REVIEW,
    "closed": [*TO_REVIEW, verification(), CloseImprovement(verdict="successful")],
    "withdrawn": [WithdrawImprovement(reason="no longer needed")],
}


def in_state(label: str) -> Improvement:
    return through(PATHS[label])


# -- proposal ---------------------------------------------------------------------------------


def test_a_proposal_records_its_number_design_and_proposer():
    improvement = propose()
    proposed = improvement.pending_events[-1]
    assert type(proposed) is Improvement.Proposed
    assert (improvement.number, improvement.state, improvement.plan_version) == (
        NUMBER,
        "proposed",
        0,
    )
    assert improvement.design["name"] == "Faster first response"
    assert (proposed.by, proposed.causation_id) == (PROPOSER, "req-propose")


def test_the_proposal_takes_the_number_the_application_issues_or_none():
    unnumbered = ProposeImprovement(design()).run(None, ctx(), RULES)
    assert unnumbered.number == ""
    assert ProposeImprovement.practice == "improvement"


def test_accepting_then_declining_is_refused_and_declining_records_the_reason():
    assert in_state("accepted").state == "accepted"
    declined = in_state("declined")
    assert (declined.state, declined.reason) == ("declined", "duplicate of CSI0000999")
    assert declined.closed_at == declined.modified_on


def test_declining_needs_a_reason():
    with pytest.raises(InvalidValue, match="reason must not be blank"):
        run(propose(), DeclineImprovement(reason="  "))


# -- the whole way ---------------------------------------------------------------------------


def test_the_whole_lifecycle_to_a_successful_closure():
    improvement = propose()
    seen = []
    for command in PATHS["closed"]:
        run(improvement, command)
        seen.append(improvement.state)
    assert seen == [
        "accepted",
        *["accepted"] * 2,
        "designed",
        "approved",
        "in_implementation",
        *["in_implementation"] * 2,
        "in_review",
        "in_review",
        "closed",
    ]
    assert (improvement.outcome, improvement.approved_version) == ("successful", 2)
    assert improvement.closed_at == improvement.modified_on


def test_every_event_records_who_acted_and_on_which_request():
    improvement = through(TO_DESIGNED)
    run(improvement, ApproveImprovement(plan_version=2), by=SMO)
    run(improvement, *PATHS["closed"][len(TO_APPROVED) :], by=REVIEWER)
    events = improvement.collect_events()
    assert [e.by for e in events] == [PROPOSER] + [OWNER] * 4 + [SMO] + [REVIEWER] * 6
    assert [e.causation_id for e in events[1:]] == [f"req-{n}" for n in range(2, 13)]
    assert improvement.approved_by == "sam"


# -- every step refused where it does not apply ----------------------------------------------

SAMPLE: dict[str, ImprovementCommand] = {
    "accept": AcceptImprovement(),
    "decline": DeclineImprovement(reason="r"),
    "revise_design": ReviseDesign({"motivation": "fewer calls"}, partial=True),
    "revise_goals": ReviseGoals([goal(target={"kind": "absolute", "value": 1.5})]),
    "revise_plan": RevisePlan(plan(raci=[{"party": "olivia", "role": "accountable"}])),
    "submit_design": SubmitDesign(),
    "approve": ApproveImprovement(plan_version=2),
    "start_implementation": StartImplementation(),
    "hold": HoldImprovement(reason="r"),
    "resume": ResumeImprovement(),
    "complete_action": CompleteAction("A1"),
    "drop_action": DropAction("A1", reason="r"),
    "complete_implementation": CompleteImplementation(),
    "record_verification": verification(),
    "record_cause_analysis": RecordCauseAnalysis("G1", cause="c"),
    "close": CloseImprovement(verdict="successful"),
    "withdraw": WithdrawImprovement(reason="r"),
    "remind_review": RemindReview(now=datetime(2026, 6, 1, tzinfo=UTC)),
}
ILLEGAL = [
    (action_name, label)
    for action_name, step in STEPS.items()
    for label in PATHS
    if ("closed" if label == "withdrawn" else label) not in step.sources
]


def test_every_command_takes_a_step_of_the_lifecycle():
    assert set(ACTIONS) == set(STEPS) == set(SAMPLE)
    assert all(type(SAMPLE[name]).action == name for name in SAMPLE)


@pytest.mark.parametrize(("action_name", "label"), ILLEGAL)
def test_a_step_is_refused_in_every_state_it_does_not_apply_in(action_name, label):
    improvement = in_state(label)
    version, state = improvement.version, improvement.state.replace("_", " ")
    with pytest.raises(IllegalTransition) as refusal:
        run(improvement, SAMPLE[action_name])
    verb = STEPS[action_name].verb
    assert str(refusal.value).startswith(f"cannot {verb} improvement {NUMBER}: it is {state}")
    assert improvement.version == version


def test_a_refusal_of_a_closed_improvement_says_how_it_closed():
    with pytest.raises(IllegalTransition, match=r"CSI0001001: it is closed \(withdrawn\)"):
        run(in_state("withdrawn"), AcceptImprovement())


# -- withdrawal -------------------------------------------------------------------------------


@pytest.mark.parametrize("label", sorted(state.value for state in LIVE_STATES))
def test_withdrawal_closes_an_improvement_from_every_live_state(label):
    improvement = run(in_state(label), WithdrawImprovement(reason="  merged into CSI0001007 "))
    withdrawn = improvement.pending_events[-1]
    assert (improvement.state, improvement.outcome) == ("closed", "withdrawn")
    assert improvement.reason == withdrawn.reason == "merged into CSI0001007"
    assert improvement.hold_reason is None and improvement.closed_at is not None


def test_withdrawal_needs_a_reason():
    with pytest.raises(InvalidValue, match="reason must not be blank"):
        run(propose(), WithdrawImprovement(reason=""))


# -- approval bound to a plan version ---------------------------------------------------------


def test_each_edit_of_design_goals_or_plan_is_a_new_plan_version():
    improvement = in_state("designed")
    assert improvement.plan_version == 2
    run(improvement, ReviseDesign({"budget": {"amount": 5000, "currency": "EUR"}}, partial=True))
    assert (improvement.plan_version, improvement.state) == (3, "designed")
    assert improvement.pending_events[-1].revokes_approval is False


def test_approval_records_the_plan_version_it_approves():
    improvement = run(in_state("designed"), ApproveImprovement(plan_version=2, note="go"), by=SMO)
    approved = improvement.pending_events[-1]
    assert (approved.plan_version, approved.note, approved.by) == (2, "go", SMO)
    assert (improvement.approved_version, improvement.approved_by) == (2, "sam")


@pytest.mark.parametrize("stale", [1, 3, 0, True])
def test_approving_another_plan_version_than_the_current_is_refused(stale):
    improvement = in_state("designed")
    with pytest.raises(IllegalTransition, match="the current one is 2"):
        run(improvement, ApproveImprovement(plan_version=stale))
    assert improvement.state == "designed"


@pytest.mark.parametrize("label", ["approved", "in_implementation", "on_hold"])
@pytest.mark.parametrize("edit", ["revise_design", "revise_goals", "revise_plan"])
def test_an_edit_after_approval_goes_back_to_designed_for_reapproval(label, edit):
    improvement = run(in_state(label), SAMPLE[edit])
    revised = improvement.pending_events[-1]
    assert (improvement.state, improvement.plan_version) == ("designed", 3)
    assert (revised.plan_version, revised.revokes_approval) == (3, True)
    assert improvement.approved_version is improvement.approved_by is improvement.hold_reason
    with pytest.raises(IllegalTransition, match="plan version 2 .* the current one is 3"):
        run(improvement, ApproveImprovement(plan_version=2))
    run(improvement, ApproveImprovement(plan_version=3), by=SMO)
    assert (improvement.state, improvement.approved_version) == ("approved", 3)


@pytest.mark.parametrize("edit", ["revise_design", "revise_goals", "revise_plan"])
def test_an_edit_that_changes_nothing_is_refused(edit):
    improvement = run(in_state("designed"), SAMPLE[edit])
    with pytest.raises(IllegalTransition, match="already has that .*; nothing to change"):
        run(improvement, SAMPLE[edit])


def test_submitting_needs_an_owner_goals_actions_and_an_accountable_party():
    improvement = run(propose(owner=""), AcceptImprovement())
    with pytest.raises(IllegalTransition) as refusal:
        run(improvement, SubmitDesign())
    assert str(refusal.value) == (
        "cannot submit the design of improvement CSI0001001: it needs an owner; at least one "
        "goal; at least one action in its plan; a knowledge hand-over action in its plan; "
        "an accountable party"
    )


def test_approval_needs_a_knowledge_hand_over_in_the_plan_it_approves():
    improvement = in_state("designed")
    run(improvement, RevisePlan(plan(actions=[action("A1", "2026-03-01")])))
    with pytest.raises(IllegalTransition, match="it needs a knowledge hand-over action"):
        run(improvement, ApproveImprovement(plan_version=3))


def test_the_knowledge_hand_over_comes_at_the_end_of_the_plan():
    late = [action("A1", "2026-04-01"), action("A2", "2026-03-15", kind="knowledge_handover")]
    improvement = run(in_state("designed"), RevisePlan(plan(actions=late)))
    with pytest.raises(IllegalTransition, match="hand-over due at the end"):
        run(improvement, ApproveImprovement(plan_version=3))


# -- implementation ---------------------------------------------------------------------------


def test_hold_and_resume_record_the_reason():
    improvement = in_state("on_hold")
    assert (improvement.state, improvement.hold_reason) == ("on_hold", "budget freeze")
    run(improvement, ResumeImprovement())
    assert (improvement.state, improvement.hold_reason) == ("in_implementation", None)


def test_actions_are_completed_or_dropped_once_with_a_reason_for_dropping():
    improvement = run(in_state("on_hold"), DropAction("A1", reason="covered by CHG0001001"))
    dropped = improvement.plan["actions"][0]
    assert (dropped["status"], dropped["reason"]) == ("dropped", "covered by CHG0001001")
    with pytest.raises(IllegalTransition, match="action 'A1' .* is already dropped"):
        run(improvement, CompleteAction("A1"))


def test_dropping_needs_a_reason_and_an_action_the_plan_has():
    improvement = in_state("in_implementation")
    with pytest.raises(InvalidValue, match="reason must not be blank"):
        run(improvement, DropAction("A1", reason=" "))
    with pytest.raises(InvalidValue, match="has no action 'A9'"):
        run(improvement, CompleteAction("A9"))


def test_the_knowledge_hand_over_cannot_be_dropped():
    with pytest.raises(IllegalTransition, match="hand-over 'A2' .* cannot be dropped"):
        run(in_state("in_implementation"), DropAction("A2", reason="no time"))


def test_the_implementation_completes_only_with_no_action_open():
    improvement = run(in_state("in_implementation"), CompleteAction("A2"))
    with pytest.raises(IllegalTransition, match="actions still open: A1"):
        run(improvement, CompleteImplementation())


def test_a_plan_revision_keeps_the_progress_of_the_actions_it_keeps():
    improvement = run(in_state("in_implementation"), CompleteAction("A1"))
    extra = [*plan()["actions"], action("A3", "2026-03-10")]
    run(improvement, RevisePlan(plan(actions=extra)))
    assert [a["status"] for a in improvement.plan["actions"]] == ["done", "open", "open"]


# -- review and verdict -----------------------------------------------------------------------


def test_a_verification_judges_each_goal_against_its_target():
    improvement = run(in_state("in_review"), verification(figures(3.0, 2.5)), by=REVIEWER)
    recorded = improvement.pending_events[-1]
    (row,) = recorded.control_table
    assert (row["target"], row["met"]) == (pytest.approx(2.4), False)
    assert (recorded.verification, recorded.plan_version, recorded.pinned) == (1, 2, PINNED)
    assert improvement.verification["by"] == "rita"


def test_a_later_verification_supersedes_the_earlier_one():
    improvement = run(in_state("in_review"), verification(figures(3.0, 2.5)), verification())
    assert improvement.verification["number"] == 2
    assert improvement.verification["control_table"][0]["met"] is True


def test_a_cause_analysis_is_for_an_unmet_goal_of_a_verification():
    improvement = in_state("in_review")
    with pytest.raises(IllegalTransition, match="has no verification yet"):
        run(improvement, RecordCauseAnalysis("G1", cause="c"))
    run(improvement, verification())
    with pytest.raises(IllegalTransition, match="goal 'G1' .* was met"):
        run(improvement, RecordCauseAnalysis("G1", cause="c"))


def test_a_cause_analysis_records_follow_ups_and_closing_rests_on_it():
    improvement = run(in_state("in_review"), verification(figures(3.0, 2.9)))
    with pytest.raises(IllegalTransition, match="unmet goals need a cause analysis first: G1"):
        run(improvement, CloseImprovement(verdict="unsuccessful"))
    analysis = RecordCauseAnalysis("G1", "night shift understaffed", ["hire"], "CSI0001002")
    run(improvement, analysis, CloseImprovement(verdict="unsuccessful", summary="learnt a lot"))
    assert improvement.cause_analyses["G1"]["follow_up_improvement"] == "CSI0001002"
    assert (improvement.outcome, improvement.summary) == ("unsuccessful", "learnt a lot")
    assert improvement.pending_events[-1].verification == 1


def test_closing_needs_a_verification():
    with pytest.raises(IllegalTransition, match="record a verification first"):
        run(in_state("in_review"), CloseImprovement(verdict="successful"))


def _two_goals_half_met() -> Improvement:
    goals = [goal(), goal(id="G2", kpi="fcr_rate", direction="increase")]
    improvement = run(in_state("in_implementation"), ReviseGoals(goals))
    run(improvement, ApproveImprovement(plan_version=3), StartImplementation())
    run(improvement, CompleteAction("A1"), CompleteAction("A2"), CompleteImplementation())
    run(improvement, verification(figures(3.0, 2.0), figures(0.5, 0.5, "G2")))
    return run(improvement, RecordCauseAnalysis("G2", cause="no knowledge articles"))


@pytest.mark.parametrize(
    ("verdict", "allowed"),
    [("successful", False), ("partly_successful", True), ("unsuccessful", True)],
)
def test_a_verdict_may_be_harsher_than_the_figures_never_kinder(verdict, allowed):
    improvement = _two_goals_half_met()
    if not allowed:
        with pytest.raises(IllegalTransition, match="cannot close as successful"):
            run(improvement, CloseImprovement(verdict=verdict))
        return
    assert run(improvement, CloseImprovement(verdict=verdict)).outcome == verdict


def test_partly_successful_needs_a_goal_met():
    improvement = run(in_state("in_review"), verification(figures(3.0, None)))
    run(improvement, RecordCauseAnalysis("G1", cause="no data"))
    with pytest.raises(IllegalTransition, match="partly successful: no goal was met"):
        run(improvement, CloseImprovement(verdict="partly_successful"))


@pytest.mark.parametrize("verdict", ["withdrawn", "great"])
def test_a_verdict_is_one_of_the_three_review_outcomes(verdict):
    improvement = run(in_state("in_review"), verification())
    with pytest.raises(InvalidValue, match="verdict must be"):
        run(improvement, CloseImprovement(verdict=verdict))
