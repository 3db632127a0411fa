"""Issue 11's proof that a recorded verification is reproducible, on a real Kafka broker:
compute the control table, append 10,000 more events (some back-dated into its periods, so
the live figures move), rebuild every read model from Kafka offset 0, compute again from the
recorded pins: identical.

The goals avoid the SLA-based KPIs: those take the SLA read model's current verdicts, a
documented limit (docs/improvements.md), not something a replay must reproduce.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from application.improvement.verification import Pins, recorded
from domain.improvement.commands import (
    AcceptImprovement,
    ApproveImprovement,
    CompleteAction,
    CompleteImplementation,
    ProposeImprovement,
    RecordVerification,
    ReviseGoals,
    RevisePlan,
    StartImplementation,
    SubmitDesign,
)
from domain.improvement.design import control_table
from domain.incident.commands import (
    Acknowledge,
    Assign,
    Comment,
    Hold,
    LogIncident,
    Reopen,
    Resolve,
    Resume,
)
from domain.shared_kernel.actor import Actor, ActorKind
from domain.shared_kernel.command_context import Context
from infra.operations.read_model_rebuild import rebuild
from tests.integration.test_kafka_pipeline import relay_all, run_workers

JANUARY = {"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z"}
MARCH = {"start": "2026-03-01T00:00:00Z", "end": "2026-04-01T00:00:00Z"}
SHAPE = {
    "direction": "decrease",
    "target": {"kind": "relative", "value": 0.2},
    "baseline": JANUARY,
    "review": MARCH,
}
GOALS = [
    {"id": "ttr", "kpi": "ttr_mean_hours", **SHAPE},
    {"id": "hold", "kpi": "mean_hours_in_on_hold", **SHAPE},
    {"id": "reopen", "kpi": "reopen_rate", **SHAPE},
]
SCOPE = {"groups": ["desk"]}
DESIGN = {"name": "Faster resolution", "area": "process", "owner": "carol", "scope": SCOPE}
PLAN = {
    "actions": [
        {
            "id": "kb",
            "title": "Write it up",
            "owner": "carol",
            "due": "2026-06-01",
            "kind": "knowledge_handover",
        },
    ],
    "raci": [{"party": "carol", "role": "accountable"}],
}
APPENDED = 10_000
BY = Context(Actor("carol", ActorKind.PERSON), "improvement")


def _at(when: datetime) -> Context:
    return Context(Actor("monitoring", ActorKind.UPSTREAM), "history", occurred_at=when)


def _incident(desk, group: str, opened: datetime, hours: float, held: float) -> UUID:
    """An incident of `group` opened then, on hold `held` hours, resolved `hours` later."""
    incident = desk.create(
        LogIncident(title="Mail down", caller="bob", impact=2, urgency=2), _at(opened)
    )
    steps = [
        (Assign(group=group, agent="ann"), timedelta(minutes=5)),
        (Acknowledge(), timedelta(minutes=10)),
        (Hold(reason="awaiting_caller"), timedelta(hours=1)),
        (Resume(), timedelta(hours=1 + held)),
        (Resolve(code="fixed"), timedelta(hours=hours)),
    ]
    for command, after in steps:
        desk.execute(incident.id, command, _at(opened + after))
    return incident.id


def _reopen(desk, incident_id: UUID, at: datetime, held: float) -> None:
    """Reopened then, on hold `held` hours, resolved again an hour after that."""
    for command, after in (
        (Reopen(reason="back again"), timedelta()),
        (Hold(reason="awaiting_caller"), timedelta(hours=1)),
        (Resume(), timedelta(hours=1 + held)),
        (Resolve(code="fixed"), timedelta(hours=2 + held)),
    ):
        desk.execute(incident_id, command, _at(at + after))


def _history(desk) -> dict[str, list[UUID]]:
    """Two groups, a dozen incidents each in January and in March; the desk's faster and
    less on hold in March, two of its January ones reopened."""
    ids: dict[str, list[UUID]] = {"january": [], "march": []}
    for day in range(12):
        jan, mar = (
            datetime(2026, 1, 3 + day, 9, tzinfo=UTC),
            datetime(2026, 3, 3 + day, 9, tzinfo=UTC),
        )
        ids["january"].append(_incident(desk, "desk", jan, 10 + day % 3, 2 + day % 2))
        ids["march"].append(_incident(desk, "desk", mar, 6 + day % 4, 1))
        ids["january"].append(_incident(desk, "network", jan, 8, 3))
        ids["march"].append(_incident(desk, "network", mar, 9 - day % 2, 2))
    for incident_id in ids["january"][:4:2]:
        _reopen(desk, incident_id, datetime(2026, 1, 18, 9, tzinfo=UTC), 4)
    return ids


def _register(desk) -> UUID:
    """Through the desk, up to the review: proposed, accepted, planned, approved, done."""
    improvement = desk.create(ProposeImprovement(design=DESIGN), BY)
    for command in (
        AcceptImprovement(),
        ReviseGoals(goals=GOALS),
        RevisePlan(plan=PLAN),
        SubmitDesign(),
    ):
        improvement = desk.execute(improvement.id, command, BY)
    for command in (
        ApproveImprovement(plan_version=improvement.plan_version),
        StartImplementation(),
        CompleteAction(action_id="kb"),
        CompleteImplementation(),
    ):
        improvement = desk.execute(improvement.id, command, BY)
    return improvement.id


def _append(desk, ids: dict[str, list[UUID]]) -> None:
    """Back-dated into both periods: reopens with time on hold, slow new incidents, then
    comments (the cheap command) on those up to APPENDED events in all. The other incidents
    get no event after the pin: their figures come from the rebuilt KPI read model."""
    start, touched = desk.stored_events(), []
    for month, when in (
        ("january", datetime(2026, 1, 25, 9, tzinfo=UTC)),
        ("march", datetime(2026, 3, 25, 9, tzinfo=UTC)),
    ):
        for incident_id in ids[month][:8:2]:  # the desk's
            _reopen(desk, incident_id, when, 6)
            touched.append((incident_id, when + timedelta(days=5)))
        for day in range(6):
            opened = when + timedelta(days=1, hours=day)
            touched.append((_incident(desk, "desk", opened, 30, 12), when + timedelta(days=5)))
    for n in range(APPENDED - (desk.stored_events() - start)):
        incident_id, when = touched[n % len(touched)]
        desk.execute(incident_id, Comment(text=f"note {n}"), _at(when + timedelta(seconds=n)))


def _caught_up(container):
    """Nothing left on the topic, nor owed by a read model (the KPIs counting incidents)."""

    def probe() -> bool:
        lag = container.kafka.consumer_lag()
        owed = any(runner.owed() for runner in container.runners)
        return lag is not None and not any(lag.values()) and not owed

    return probe


def test_verification_is_identical_after_10000_events_and_every_rebuild_from_offset_zero(
    container,
):
    desk = container.desk
    ids = _history(desk)
    improvement_id = _register(desk)
    relay_all(container)
    run_workers(container, _caught_up(container))

    verification = container.verification()
    improvement = desk.get(improvement_id, practice="improvement")
    pins = verification.pins(improvement, None)
    table = verification.results(improvement, pins)
    assert pins.log_position == desk.stored_events()  # every event, as the workers folded it
    assert [row["goal_id"] for row in table] == ["ttr", "hold", "reopen"]
    for row in table:
        for figures in (row, row["comparison"]):
            for period in ("baseline", "review"):
                assert figures[period]["value"] is not None and figures[period]["count"] > 0
        assert row["comparison"]["baseline"]["count"] > row["baseline"]["count"]
    assert table[0]["baseline"]["value"] > table[0]["review"]["value"]
    assert table[2]["baseline"]["value"] > 0  # two of January's reopened
    record = RecordVerification(results=recorded(table), pinned=pins.stored())
    desk.execute(improvement_id, record, BY)

    before = desk.stored_events()
    _append(desk, ids)
    assert desk.stored_events() - before == APPENDED

    relay_all(container)
    for runner in container.runners:
        replayed = rebuild(container, runner.projection.name, show_progress=False)
        assert replayed == desk.stored_events(), runner.projection.name

    # The rebuilt read models hold the new history: computed at the log's head (`improvement`
    # is as it was before the recording, so no recorded baseline position holds the baseline
    # back), every figure moved.
    now = verification.results(improvement, verification.pins(improvement, None))
    for row, then in zip(now, table, strict=True):
        for period in ("baseline", "review"):
            assert row[period] != then[period], (row["goal_id"], period)

    # As an auditor: the improvement as stored, its figures from its recorded pins.
    audited = desk.get(improvement_id, practice="improvement")
    pinned = Pins.of(audited.verification["pinned"])
    assert pinned == pins
    again = verification.results(audited, pinned)
    assert again == table
    assert control_table(audited.goals, recorded(again)) == audited.verification["control_table"]
