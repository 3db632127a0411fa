"""Every Improvement event, and a snapshot, survives the store's orjson transcoder unchanged:
as_of and snapshots rebuild an improvement from what the store gives back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from eventsourcing.domain import DomainEvent, Snapshot

from domain.improvement.commands import (
    ApproveImprovement,
    CloseImprovement,
    CompleteAction,
    CompleteImplementation,
    DropAction,
    RecordCauseAnalysis,
    RecordVerification,
    RemindReview,
    ResumeImprovement,
    ReviseDesign,
    ReviseGoals,
    RevisePlan,
    StartImplementation,
)
from domain.improvement.design import normalise_design, normalise_goals
from domain.improvement.improvement import Improvement
from domain.shared_kernel.actor import Actor, ActorKind
from domain.shared_kernel.errors import IllegalTransition
from tests.builders import mapper, replay
from tests.unit.test_improvement import (
    PATHS,
    PINNED,
    action,
    figures,
    goal,
    in_state,
    plan,
    propose,
    run,
)

FULL_DESIGN = {
    "name": "Faster first response",
    "area": "process",
    "owner": "olivia",
    "team": ["ann", "bob"],
    "services": ["mail"],
    "processes": ["incident management"],
    "motivation": "callers wait",
    "scope": {"services": ["mail"], "priorities": ["P1", "P2"], "channels": ["phone"]},
    "planned_start": "2026-03-01",
    "planned_end": "2026-06-30",
    "expected_outcome": "MTTA below 2 h",
    "budget": {"amount": 12_500.5, "currency": "EUR"},
    "resources": "two analysts, half time",
    "inputs": [
        {"kind": "kpi_trend", "kpi": "mtta_hours", "kpi_scope": {"groups": ["network"]}},
        {"kind": "complaint", "note": "CEO", "tickets": [{"type": "incident", "ref": "INC1"}]},
    ],
}


def _lived() -> Improvement:
    """An improvement through every kind of event but Declined and Withdrawn."""
    improvement = run(in_state("on_hold"), ResumeImprovement(), ReviseDesign(FULL_DESIGN))
    goals = [goal(), goal(id="G2", kpi="nps", direction="increase")]
    actions = [*plan()["actions"], action("A3", "2026-03-05")]
    run(improvement, ReviseGoals(goals), RevisePlan(plan(actions=actions)))
    run(improvement, ApproveImprovement(plan_version=5), StartImplementation())
    run(improvement, DropAction("A3", reason="not needed"), CompleteAction("A1"))
    run(improvement, CompleteAction("A2"), CompleteImplementation())
    reminder = RemindReview(now=datetime(2026, 5, 2, tzinfo=UTC))  # the review date passed
    run(improvement, reminder, by=Actor("review-reminders", ActorKind.AUTOMATION))
    comparison = {"baseline": {"value": -5, "count": 80}, "review": {"value": None, "count": 0}}
    results = [figures(3.0, 2.0), {**figures(-10, -10, "G2"), "comparison": comparison}]
    run(improvement, RecordVerification(results, {**PINNED, "zone": "UTC", "exact": True}))
    run(improvement, RecordCauseAnalysis("G2", "survey too small", ["survey more"], None))
    return run(improvement, CloseImprovement("partly_successful", summary="half way"))


def _events() -> list[DomainEvent]:
    declined = run(propose(), PATHS["declined"][0])
    withdrawn = run(propose(), PATHS["withdrawn"][0])
    return [
        *_lived().collect_events(),
        *declined.collect_events()[1:],
        *withdrawn.collect_events()[1:],
    ]


EVENTS = _events()


def test_the_events_cover_every_event_class_of_the_improvement():
    declared = {
        value
        for name, value in vars(Improvement).items()
        if isinstance(value, type)
        and issubclass(value, DomainEvent)
        and name not in ("Event", "Created")
    }
    assert {type(e) for e in EVENTS} == declared
    assert len(declared) == 19  # Proposed and 18 more


@pytest.mark.parametrize(
    "event", EVENTS, ids=lambda e: f"{e.originator_version}-{type(e).__name__}"
)
def test_event_round_trips_field_by_field(event):
    m = mapper()
    copy = m.to_domain_event(m.to_stored_event(event))
    assert type(copy) is type(event) and vars(copy) == vars(event)
    assert _types(vars(copy)) == _types(vars(event))
    assert isinstance(copy.by, Actor) and isinstance(copy.by.kind, ActorKind)
    assert copy.causation_id


def _types(value: object) -> object:
    """The type of every part of a value, so an int read back as a float would show."""
    if isinstance(value, dict):
        return {key: _types(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_types(item) for item in value]
    return (type(value), value.utcoffset() if isinstance(value, datetime) else None)


def test_an_improvement_rebuilt_from_round_tripped_events_equals_the_original():
    events = _lived().collect_events()
    m = mapper()
    rebuilt = replay([m.to_domain_event(m.to_stored_event(e)) for e in events])
    assert vars(rebuilt) == vars(replay(events))
    assert (rebuilt.state, rebuilt.outcome, rebuilt.plan_version) == (
        "closed",
        "partly_successful",
        5,
    )


def test_snapshot_round_trip_of_an_improvement():
    improvement = _lived()
    snapshot = Snapshot.take(improvement)
    m = mapper()
    copy = m.to_domain_event(m.to_stored_event(snapshot))
    assert vars(copy) == vars(snapshot) and _types(copy.state) == _types(snapshot.state)
    restored = copy.mutate(None)
    expected = {k: v for k, v in vars(improvement).items() if k != "_pending_events"}
    assert {k: v for k, v in vars(restored).items() if k != "_pending_events"} == expected


def test_what_is_recorded_is_accepted_again_unchanged():
    """A design or goals read back (GET) and sent again (PUT) is no change at all."""
    design = normalise_design(FULL_DESIGN)
    goals = normalise_goals([goal(), goal(id="G2", kpi="nps", direction="increase")])
    assert normalise_design(design) == design and normalise_goals(goals) == goals
    improvement = run(in_state("designed"), ReviseDesign(FULL_DESIGN))
    with pytest.raises(IllegalTransition, match="already has that design; nothing to change"):
        run(improvement, ReviseDesign(improvement.design))
