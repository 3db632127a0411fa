"""The retention job: people whose tickets all ended longer ago than the retention period
are erased, each erasure recorded by the `retention` automation; anyone with an open or
recent ticket is kept (application/privacy/retention.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.incident.commands import Assign, Cancel, Close, LogIncident, Resolve
from domain.privacy.erasure import erasure_id
from domain.shared_kernel.actor import Actor
from domain.shared_kernel.command_context import Context

NOW = datetime.now(UTC)


def _ticket(container, caller: str, ended_days_ago: float | None, cancel: bool = False) -> str:
    """A ticket of `caller`, closed (or cancelled) that long ago; None: still open."""
    at = NOW - timedelta(days=(ended_days_ago or 0) + 5)
    ctx = Context(Actor("erin"), "retention-test", occurred_at=at)
    desk = container.desk
    incident = desk.create(LogIncident(title="t", caller=caller, impact=2, urgency=2), ctx)
    if ended_days_ago is None:
        return str(incident.id)
    ended = Context(
        Actor("erin"), "retention-test", occurred_at=NOW - timedelta(days=ended_days_ago)
    )
    if cancel:
        desk.execute(incident.id, Cancel(reason="duplicate"), ended)
        return str(incident.id)
    desk.execute(incident.id, Assign(group="desk"), ctx)
    desk.execute(incident.id, Resolve(code="fixed"), ctx)
    desk.execute(incident.id, Close(), ended)
    return str(incident.id)


def test_only_people_whose_tickets_all_ended_long_ago_are_erased(container):
    _ticket(container, "Ann Old", 400)
    _ticket(container, "Ann Old", 90, cancel=True)
    _ticket(container, "Bob Mixed", 400)
    _ticket(container, "Bob Mixed", None)
    _ticket(container, "Cid Recent", 10)
    container.feed.catch_up()
    vault = container.vault
    ann, bob, cid = (vault.pseudonym("caller", n) for n in ("Ann Old", "Bob Mixed", "Cid Recent"))

    erased = container.retention().run_pass(days=30)

    assert erased == [ann]
    assert not vault.status(ann)["has_key"]
    assert vault.status(bob)["has_key"] and vault.status(cid)["has_key"]
    record = container.desk.find(erasure_id(ann))
    assert record.legal_basis == "retention" and "30 days" in record.reason
    first = next(iter(container.desk.events.get(erasure_id(ann))))
    assert first.by == Actor("retention", first.by.kind) and str(first.by.kind) == "automation"
    assert container.retention().run_pass(days=30) == []  # nothing left to do
