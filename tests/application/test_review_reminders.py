"""The review reminder scheduler against a real desk and register read model: a pass reminds
an improvement whose review date passed unverified, once; it skips verified, closed and
declined ones; a refusal by the improvement (the read model behind) is not an error."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from application.improvement.review_reminders import REMINDER, ReviewReminders
from domain.improvement.commands import ImprovementCommand, ProposeImprovement
from domain.improvement.improvement import Improvement
from domain.shared_kernel.actor import ActorKind
from infra.settings import Settings
from projections.improvement import improvement_register
from tests.builders import ctx
from tests.unit.test_improvement import MAY, PATHS, design, verification
from tests.waiting import wait_until

DUE = MAY  # the review date of the builders' goal: the end of its review period
AFTER = (MAY + timedelta(days=1)).timestamp()


def improvement_in(container, label: str) -> UUID:
    desk = container.desk
    improvement = desk.create(ProposeImprovement(design()), ctx())
    command: ImprovementCommand
    for command in PATHS[label]:
        desk.execute(improvement.id, command, ctx())
    return improvement.id


def reminders(container, improvement_id: UUID) -> list[Improvement.ReviewReminded]:
    return [
        e
        for e in container.desk.events.get(improvement_id)
        if isinstance(e, Improvement.ReviewReminded)
    ]


def scheduler(container, now: float = AFTER) -> ReviewReminders:
    reminders_ = container.review_reminders()
    reminders_.clock = lambda: now
    return reminders_


def test_a_pass_reminds_a_due_improvement_once(container):
    due = improvement_in(container, "in_implementation")
    container.feed.catch_up()
    reminder = scheduler(container)
    done = reminder.run_pass()
    assert done.reminded == [str(due)] and not done.refused
    assert done.causation_id == "review-reminders:2026-05-02T00:00:00.000000Z"
    [event] = reminders(container, due)
    assert (event.by, event.by.kind) == (REMINDER, ActorKind.AUTOMATION)
    assert (event.causation_id, event.review_date, event.goal_ids) == (
        done.causation_id,
        DUE,
        ["G1"],
    )
    # The same scheduler, and one started afresh once the register folded the reminder.
    assert reminder.run_pass().reminded == []
    container.feed.catch_up()
    with container.read_db.transaction(read_only=True) as tx:
        record = improvement_register.get(tx, str(due))
    assert record is not None and record["review_reminded_for"] == "2026-05-01T00:00:00.000000Z"
    again = scheduler(container, AFTER + 3600).run_pass()
    assert (again.reminded, again.refused) == ([], {})
    assert len(reminders(container, due)) == 1


def test_a_pass_skips_verified_closed_and_declined_improvements(container):
    ids = {
        label: improvement_in(container, label)
        for label in ("in_review", "closed", "withdrawn", "declined", "on_hold")
    }
    container.desk.execute(ids["in_review"], verification(), ctx())  # now: after the date
    container.feed.catch_up()
    done = scheduler(container).run_pass()
    assert done.reminded == [str(ids["on_hold"])] and not done.refused
    assert [label for label, i in ids.items() if reminders(container, i)] == ["on_hold"]


def test_nothing_is_reminded_before_the_review_date(container):
    improvement_id = improvement_in(container, "approved")
    container.feed.catch_up()
    early = scheduler(container, DUE.timestamp() - 1).run_pass()
    assert (early.reminded, early.refused) == ([], {})
    assert scheduler(container, DUE.timestamp()).run_pass().reminded == [str(improvement_id)]


def test_a_refusal_by_the_improvement_is_not_an_error_of_the_pass(container):
    """The register has not folded a reminder or a verification yet: the pass asks, the
    improvement refuses, and the pass goes on to the others."""
    first, second = improvement_in(container, "designed"), improvement_in(container, "in_review")
    container.feed.catch_up()
    assert len(scheduler(container).run_pass().reminded) == 2
    # A scheduler started afresh before the register folded those reminders.
    done = scheduler(container, AFTER + 60).run_pass()
    assert done.reminded == [] and set(done.refused) == {str(first), str(second)}
    assert all("already reminded" in why for why in done.refused.values())
    # Verified meanwhile: recorded after the review date, not folded yet.
    verified = improvement_in(container, "in_review")
    fresh = improvement_in(container, "in_implementation")
    container.feed.catch_up()
    container.desk.execute(verified, verification(), ctx())
    done = scheduler(container, AFTER + 120).run_pass()
    assert done.reminded == [str(fresh)] and list(done.refused) == [str(verified)]
    assert "nothing to remind" in done.refused[str(verified)]
    counts = [len(reminders(container, i)) for i in (first, second, verified, fresh)]
    assert counts == [1, 1, 0, 1]


def test_started_it_reminds_on_its_own_thread_and_stops(container):
    improvement_id = improvement_in(container, "in_implementation")
    container.feed.catch_up()
    reminder = container.review_reminders()
    reminder.poll_interval = 0.05
    reminder.start()
    try:
        wait_until(lambda: reminder.reminded == 1, timeout=5)
    finally:
        reminder.stop()
    assert len(reminders(container, improvement_id)) == 1


def test_the_embedded_setting_defaults_on_like_the_sla_scheduler(tmp_path):
    settings = Settings(data_dir=tmp_path)
    assert settings.review_reminders_embedded is settings.sla_scheduler_embedded is True
