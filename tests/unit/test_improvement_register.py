"""The improvement register read model on SQLite, fed by hand: one row per improvement from
the improvement fold, filters, pages, the register, and the audit trail's diff of the same
fold."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from domain.improvement.commands import ProposeImprovement, ReviseDesign
from domain.improvement.improvement import Improvement
from infra.sql.database import SqliteDatabase
from projections.audit import audit_trail
from projections.audit.audit_trail import AuditTrailProjection
from projections.improvement import improvement_register as register_rm
from projections.improvement.improvement_register import ImprovementRegisterProjection
from projections.runtime.envelope import Envelope
from projections.runtime.runner import ProjectionRunner
from tests.builders import RULES, ctx, envelopes_of
from tests.unit.test_improvement import PATHS, PROPOSER, design, run


def improvement(number: int, label: str, **overrides: object) -> Improvement:
    proposal = ProposeImprovement(design(**overrides))
    return run(proposal.run(f"CSI{number:07d}", ctx(PROPOSER), RULES), *PATHS[label])


@pytest.fixture
def runner() -> Iterator[ProjectionRunner]:
    db = SqliteDatabase(":memory:")
    runner = ProjectionRunner(db, ImprovementRegisterProjection())
    runner.setup()
    yield runner
    db.close()


def feed(runner: ProjectionRunner, events: list[Envelope], one_by_one: bool = False) -> None:
    batches = [[e] for e in events] if one_by_one else [events]
    for batch in batches:
        start = runner.position("test", 0)
        runner.apply_batch("test", 0, start, [(start + i, e) for i, e in enumerate(batch)])


def published(*improvements: Improvement) -> list[Envelope]:
    """Their events, one improvement after the other, numbered as a log would."""
    events = [e for i in improvements for e in i.collect_events()]
    return envelopes_of(events, first_id=101)


def search(runner: ProjectionRunner, limit: int = 50, after=None, **filters):
    with runner.db.transaction(read_only=True) as tx:
        return register_rm.search(tx, filters, limit, after)


def test_a_row_summarises_the_improvement_record(runner):
    held = improvement(1, "on_hold", services=["mail", "vpn"], planned_start="2026-03-01")
    events = published(held)
    feed(runner, events)
    total, [row], following = search(runner)
    assert (total, following) == (1, None)
    assert row == {
        "id": str(held.id),
        "number": "CSI0000001",
        "name": "Faster first response",
        "state": "on_hold",
        "outcome": None,
        "owner": "olivia",
        "services": ["mail", "vpn"],
        "area": "process",
        "planned_start": "2026-03-01",
        "planned_end": None,
        "review_date": "2026-05-01T00:00:00.000000Z",
        "goals": 1,
        "open_actions": 2,
        "plan_version": 2,
        "proposed_at": row["proposed_at"],
        "updated_at": row["updated_at"],
        "closed_at": None,
        "version": held.version,
        "position": events[-1].notification_id,
    }
    with runner.db.transaction(read_only=True) as tx:
        record = register_rm.get(tx, str(held.id))
    assert record is not None and record["hold_reason"] == "budget freeze"


def test_event_by_event_and_in_one_batch_give_the_same_rows():
    rows, events = [], published(improvement(1, "closed"), improvement(2, "declined"))
    for one_by_one in (False, True):
        db = SqliteDatabase(":memory:")
        runner = ProjectionRunner(db, ImprovementRegisterProjection())
        runner.setup()
        feed(runner, events, one_by_one)
        rows.append(search(runner)[1])
        db.close()
    assert rows[0] == rows[1] and [r["outcome"] for r in rows[0]] == [None, "successful"]


def test_filters_by_state_owner_and_service(runner):
    feed(
        runner,
        published(
            improvement(1, "proposed", owner="ann", services=["mail"]),
            improvement(2, "in_review", owner="bob", services=["mail", "vpn"]),
            improvement(3, "withdrawn", owner="ann", services=["vpn"]),
        ),
    )

    def numbers(**filters) -> list[str]:
        return [row["number"] for row in search(runner, **filters)[1]]

    assert numbers() == ["CSI0000003", "CSI0000002", "CSI0000001"]  # newest first
    assert numbers(owner="ann") == ["CSI0000003", "CSI0000001"]
    assert numbers(service="vpn") == ["CSI0000003", "CSI0000002"]
    assert numbers(state="closed", service="vpn") == ["CSI0000003"]
    assert numbers(state="in_review", owner="ann") == []


def test_a_design_revision_moves_the_improvement_to_its_new_services(runner):
    moved = improvement(1, "accepted", services=["mail"])
    run(moved, ReviseDesign(design(services=["vpn"], owner="")))
    feed(runner, published(moved))
    assert search(runner, service="mail")[0] == 0
    [row] = search(runner, service="vpn")[1]
    assert row["owner"] is None  # nobody owns it any more


def test_pages_follow_each_other_without_gaps(runner):
    feed(runner, published(*(improvement(n, "proposed") for n in range(1, 6))))
    seen, after = [], None
    while True:
        total, page, after = search(runner, limit=2, after=after)
        seen += [row["number"] for row in page]
        assert total == 5 and len(page) <= 2
        if after is None:
            break
    assert seen == [f"CSI000000{n}" for n in range(5, 0, -1)]


def test_the_register_lists_every_improvement_by_number(runner):
    feed(runner, published(improvement(2, "closed"), improvement(1, "withdrawn")))
    with runner.db.transaction(read_only=True) as tx:
        rows = register_rm.register(tx)
    assert [(r["number"], r["state"], r["outcome"]) for r in rows] == [
        ("CSI0000001", "closed", "withdrawn"),
        ("CSI0000002", "closed", "successful"),
    ]


def test_other_aggregates_events_are_skipped(runner):
    [proposed] = published(improvement(1, "proposed"))
    feed(runner, [replace(proposed, type="Incident.Logged")])
    assert search(runner)[0] == 0


def test_the_audit_trail_shows_what_each_improvement_event_changed():
    db = SqliteDatabase(":memory:")
    trail = ProjectionRunner(db, AuditTrailProjection())
    trail.setup()
    held = improvement(1, "on_hold")
    feed(trail, published(held))
    with db.transaction(read_only=True) as tx:
        lines = audit_trail.entries(tx, str(held.id), "Improvement")
    db.close()
    assert [line["event"] for line in lines][-2:] == ["ImplementationStarted", "PutOnHold"]
    assert lines[-1]["changes"] == [
        {"field": "state", "before": "in_implementation", "after": "on_hold"},
        {"field": "hold_reason", "before": None, "after": "budget freeze"},
    ]
    assert {"field": "state", "before": None, "after": "proposed"} in lines[0]["changes"]
