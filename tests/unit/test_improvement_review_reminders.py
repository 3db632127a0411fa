"""Review reminders: `RemindReview` records `Improvement.ReviewReminded` once per review date,
only once the date is reached, never for a closed or declined improvement or one verified
after its review date; the event carries who and why, survives the store's transcoder, and
the improvement record shows the last reminder."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from eventsourcing.domain import Snapshot

from domain.improvement.commands import (
    ACTIONS,
    ApproveImprovement,
    CompleteAction,
    CompleteImplementation,
    RemindReview,
    ReviseGoals,
    StartImplementation,
)
from domain.improvement.improvement import Improvement
from domain.improvement.lifecycle import LIVE_STATES, STEPS
from domain.shared_kernel.actor import Actor, ActorKind
from domain.shared_kernel.command_context import Context
from domain.shared_kernel.errors import IllegalTransition, InvalidValue
from projections.improvement.improvement_record import fold, replay
from projections.runtime.time_text import iso
from tests.builders import RULES, envelopes_of, mapper
from tests.builders import replay as mutate
from tests.unit.test_improvement import MAY, NUMBER, goal, in_state, run, verification

BOT = Actor("review-reminders", ActorKind.AUTOMATION)
CAUSE = "review-reminders:2026-05-02T00:00:00.000000Z"
DUE = MAY  # the end of goal()'s review period: the improvement's review date
AFTER = MAY + timedelta(days=1)


def remind(improvement: Improvement, now: datetime | None = AFTER, cause: str = CAUSE) -> None:
    RemindReview(now=now).run(improvement, Context(by=BOT, causation_id=cause), RULES)


def reminders(improvement: Improvement) -> list[Improvement.ReviewReminded]:
    return [e for e in improvement.pending_events if isinstance(e, Improvement.ReviewReminded)]


# -- the rules ---------------------------------------------------------------------------------


def test_the_command_is_a_domain_action_for_every_live_state():
    assert ACTIONS["remind_review"] is RemindReview
    assert STEPS["remind_review"].sources == LIVE_STATES
    assert STEPS["remind_review"].target is None  # a reminder changes no state


@pytest.mark.parametrize("label", ["designed", "approved", "in_implementation", "on_hold"])
def test_a_reminder_is_recorded_once_the_review_date_is_reached(label):
    improvement = in_state(label)
    state, version = improvement.state, improvement.version
    remind(improvement)
    [event] = reminders(improvement)
    assert (event.review_date, event.goal_ids) == (DUE, ["G1"])
    assert improvement.state == state and improvement.version == version + 1
    assert improvement.review_date() == DUE


def test_the_event_records_who_reminded_and_why():
    improvement = in_state("in_review")
    remind(improvement)
    [event] = reminders(improvement)
    assert event.by == BOT and event.by.kind == ActorKind.AUTOMATION
    assert event.causation_id == CAUSE
    assert type(event).__name__ in Improvement.CLOCK_EVENTS


def test_the_review_date_is_reached_at_the_end_of_the_last_review_period():
    improvement = in_state("in_implementation")
    second = goal(id="G2", kpi="nps", direction="increase")
    second["review"] = {"start": MAY, "end": MAY + timedelta(days=30)}
    run(improvement, ReviseGoals([goal(), second]))
    assert improvement.review_date() == MAY + timedelta(days=30)
    with pytest.raises(IllegalTransition, match="was not reached at 2026-05-02"):
        remind(improvement)  # G1's period has ended, G2's has not
    remind(improvement, now=MAY + timedelta(days=30))  # the end itself: [start, end)
    [event] = reminders(improvement)
    assert (event.review_date, event.goal_ids) == (MAY + timedelta(days=30), ["G1", "G2"])


def test_no_reminder_before_the_review_date():
    improvement = in_state("in_implementation")
    version = improvement.version
    with pytest.raises(IllegalTransition, match="review date .* is 2026-05-01T00:00:00"):
        remind(improvement, now=DUE - timedelta(microseconds=1))
    assert improvement.version == version and not reminders(improvement)


def test_a_second_reminder_of_the_same_review_date_is_refused_and_records_nothing():
    improvement = in_state("in_implementation")
    remind(improvement)
    version = improvement.version
    with pytest.raises(IllegalTransition, match="due 2026-05-01T00:00:00\\+00:00 was already"):
        remind(improvement, now=AFTER + timedelta(days=7), cause="review-reminders:later")
    assert improvement.version == version and len(reminders(improvement)) == 1


def test_a_later_review_date_is_reminded_in_its_turn_an_earlier_one_never_again():
    improvement = in_state("in_implementation")
    remind(improvement)
    later = goal(review={"start": MAY, "end": MAY + timedelta(days=60)})
    run(improvement, ReviseGoals([later]))
    remind(improvement, now=MAY + timedelta(days=61))
    assert [e.review_date for e in reminders(improvement)] == [DUE, MAY + timedelta(days=60)]
    run(improvement, ReviseGoals([goal()]))  # back to the date already reminded
    with pytest.raises(IllegalTransition, match="already reminded"):
        remind(improvement, now=MAY + timedelta(days=62))


def test_no_reminder_once_a_verification_was_recorded_after_the_review_date():
    improvement = in_state("in_review")
    run(improvement, verification())  # recorded now (after May 2026): after the review date
    assert improvement.verification is not None and improvement.verification["at"] >= DUE
    with pytest.raises(IllegalTransition, match="was verified at .* nothing to remind"):
        remind(improvement, now=improvement.verification["at"] + timedelta(days=1))


def test_a_verification_recorded_before_the_review_date_does_not_count():
    far = datetime(2150, 1, 1, tzinfo=UTC)  # a review period still to come when verified
    improvement = in_state("in_implementation")
    run(improvement, ReviseGoals([goal(review={"start": MAY, "end": far})]))
    improvement = _in_review_again(improvement)
    run(improvement, verification())
    assert improvement.verification is not None and improvement.verification["at"] < far
    remind(improvement, now=far)
    [event] = reminders(improvement)
    assert event.review_date == far


def _in_review_again(improvement: Improvement) -> Improvement:
    """An improvement sent back to designed by an edit, approved again and implemented."""
    return run(
        improvement,
        ApproveImprovement(plan_version=improvement.plan_version),
        StartImplementation(),
        CompleteAction("A1"),
        CompleteAction("A2"),
        CompleteImplementation(),
    )


@pytest.mark.parametrize(
    ("label", "state"),
    [
        ("closed", "closed (successful)"),
        ("withdrawn", "closed (withdrawn)"),
        ("declined", "declined"),
    ],
)
def test_no_reminder_for_a_closed_or_declined_improvement(label, state):
    improvement = in_state(label)
    with pytest.raises(IllegalTransition) as refusal:
        remind(improvement)
    assert str(refusal.value) == f"cannot remind the review of improvement {NUMBER}: it is {state}"


def test_no_reminder_without_goals():
    for label in ("proposed", "accepted"):
        with pytest.raises(IllegalTransition, match="has no review date"):
            remind(in_state(label))


def test_now_comes_from_the_command_else_the_context_else_the_wall_clock():
    improvement = in_state("in_implementation")
    early = Context(by=BOT, causation_id=CAUSE, occurred_at=DUE - timedelta(days=1))
    with pytest.raises(IllegalTransition, match="not reached"):
        RemindReview().run(improvement, early, RULES)
    RemindReview(now=AFTER).run(improvement, early, RULES)  # the command's own time wins
    assert len(reminders(improvement)) == 1
    wall = in_state("in_implementation")  # now: November 2026 or later, after May 2026
    RemindReview().run(wall, Context(by=BOT, causation_id=CAUSE), RULES)
    assert len(reminders(wall)) == 1


def test_now_needs_a_timezone():
    with pytest.raises(InvalidValue, match="now needs a timezone"):
        remind(in_state("in_implementation"), now=datetime(2026, 6, 1))


# -- the store and the record ------------------------------------------------------------------


def test_the_event_round_trips_through_the_store_transcoder_field_by_field():
    improvement = in_state("in_implementation")
    remind(improvement)
    [event] = reminders(improvement)
    m = mapper()
    copy = m.to_domain_event(m.to_stored_event(event))
    assert type(copy) is Improvement.ReviewReminded and vars(copy) == vars(event)
    assert copy.review_date.utcoffset() == timedelta(0)
    assert isinstance(copy.by, Actor) and copy.by.kind is ActorKind.AUTOMATION
    assert (copy.causation_id, copy.goal_ids) == (CAUSE, ["G1"])


def test_an_improvement_rebuilt_from_stored_events_or_a_snapshot_keeps_its_reminders():
    improvement = in_state("in_implementation")
    remind(improvement)
    m = mapper()
    events = improvement.collect_events()
    rebuilt = mutate([m.to_domain_event(m.to_stored_event(e)) for e in events])
    assert vars(rebuilt) == vars(mutate(events))
    snapshot = m.to_domain_event(m.to_stored_event(Snapshot.take(rebuilt)))
    restored = snapshot.mutate(None)
    assert restored.reminded_reviews == [DUE]
    with pytest.raises(IllegalTransition, match="already reminded"):
        remind(restored)


def test_the_record_shows_the_last_reminder():
    improvement = in_state("in_implementation")
    remind(improvement)
    events = improvement.collect_events()
    envelopes = envelopes_of(events)
    record = replay(envelopes)
    assert record is not None
    assert record["review_reminded_for"] == iso(DUE) == "2026-05-01T00:00:00.000000Z"
    assert record["review_reminded_at"] == iso(events[-1].timestamp)
    assert record["state"] == "in_implementation" and record["version"] == len(events)
    before = replay(envelopes[:-1])
    assert before is not None and before["review_reminded_at"] is None
    assert {k: v for k, v in record.items() if not k.startswith(("review_", "version", "up"))} == {
        k: v for k, v in before.items() if not k.startswith(("review_", "version", "up"))
    }


def test_an_event_the_fold_does_not_know_changes_only_the_version():
    envelopes = envelopes_of(in_state("in_implementation").collect_events())
    record = replay(envelopes)
    assert record is not None
    later = replace(
        envelopes[-1],
        type="Improvement.ReviewSnoozed",
        aggregate_version=record["version"] + 1,
        payload={"until": "2026-06-01T00:00:00Z"},
    )
    after = fold(record, later)
    assert after["version"] == record["version"] + 1
    assert {k: v for k, v in after.items() if k not in ("version", "updated_at")} == {
        k: v for k, v in record.items() if k not in ("version", "updated_at")
    }
