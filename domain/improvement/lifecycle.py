"""An improvement's states, the outcomes it closes with, and which step applies where.

proposed -> accepted (or declined) -> designed -> approved -> in_implementation <-> on_hold
-> in_review -> closed (successful, partly successful, unsuccessful). Withdrawing closes
any improvement not yet closed or declined, with the outcome `withdrawn`. An edit of the
design, goals or plan of an approved improvement takes it back to designed: what the
service management owner approved is no longer what would be carried out.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from domain.shared_kernel.errors import IllegalTransition


class ImprovementState(StrEnum):
    PROPOSED = "proposed"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    DESIGNED = "designed"
    APPROVED = "approved"
    IN_IMPLEMENTATION = "in_implementation"
    ON_HOLD = "on_hold"
    IN_REVIEW = "in_review"
    CLOSED = "closed"


class Outcome(StrEnum):
    SUCCESSFUL = "successful"
    PARTLY_SUCCESSFUL = "partly_successful"
    UNSUCCESSFUL = "unsuccessful"
    WITHDRAWN = "withdrawn"


S = ImprovementState
# What a review may conclude; `withdrawn` is recorded by withdrawing, never as a verdict.
VERDICTS = (Outcome.SUCCESSFUL, Outcome.PARTLY_SUCCESSFUL, Outcome.UNSUCCESSFUL)
FINAL_STATES = frozenset({S.DECLINED, S.CLOSED})
LIVE_STATES = frozenset(S) - FINAL_STATES
# Where the design, goals and plan may still change (in review they are being judged).
EDITABLE_STATES = frozenset({S.ACCEPTED, S.DESIGNED, S.APPROVED, S.IN_IMPLEMENTATION, S.ON_HOLD})
# States that rest on an approval: an edit there sends the improvement back to designed.
APPROVED_STATES = frozenset({S.APPROVED, S.IN_IMPLEMENTATION, S.ON_HOLD})


@dataclass(frozen=True)
class Step:
    """One step of the lifecycle: the states it applies in and the state it leads to
    (None: it stays where it is). `verb` is how a refusal names it."""

    verb: str
    sources: frozenset[ImprovementState]
    target: ImprovementState | None = None


# Keyed by the commands' `action` (domain/improvement/commands.py).
STEPS: dict[str, Step] = {
    "accept": Step("accept", frozenset({S.PROPOSED}), S.ACCEPTED),
    "decline": Step("decline", frozenset({S.PROPOSED}), S.DECLINED),
    "revise_design": Step("revise the design of", EDITABLE_STATES | {S.PROPOSED}),
    "revise_goals": Step("revise the goals of", EDITABLE_STATES),
    "revise_plan": Step("revise the plan of", EDITABLE_STATES),
    "submit_design": Step("submit the design of", frozenset({S.ACCEPTED}), S.DESIGNED),
    "approve": Step("approve", frozenset({S.DESIGNED}), S.APPROVED),
    "start_implementation": Step(
        "start implementing", frozenset({S.APPROVED}), S.IN_IMPLEMENTATION
    ),
    "hold": Step("put on hold", frozenset({S.IN_IMPLEMENTATION}), S.ON_HOLD),
    "resume": Step("resume", frozenset({S.ON_HOLD}), S.IN_IMPLEMENTATION),
    "complete_action": Step("complete an action of", frozenset({S.IN_IMPLEMENTATION, S.ON_HOLD})),
    "drop_action": Step("drop an action of", frozenset({S.IN_IMPLEMENTATION, S.ON_HOLD})),
    "complete_implementation": Step(
        "complete the implementation of", frozenset({S.IN_IMPLEMENTATION}), S.IN_REVIEW
    ),
    "record_verification": Step("record a verification of", frozenset({S.IN_REVIEW})),
    "record_cause_analysis": Step("record a cause analysis for", frozenset({S.IN_REVIEW})),
    "close": Step("close", frozenset({S.IN_REVIEW}), S.CLOSED),
    "withdraw": Step("withdraw", LIVE_STATES, S.CLOSED),
    # A scheduler's reminder that the review date passed without a verification: for any
    # improvement not yet closed or declined (improvement.py, `remind_review`).
    "remind_review": Step("remind the review of", LIVE_STATES),
}


def require(action: str, state: str, number: str, outcome: str | None = None) -> None:
    """IllegalTransition unless `action` applies to an improvement in `state`."""
    step = STEPS[action]
    if state in step.sources:
        return
    now = state.replace("_", " ") + (f" ({outcome.replace('_', ' ')})" if outcome else "")
    raise IllegalTransition(f"cannot {step.verb} improvement {number}: it is {now}")
