"""What-if: a draft policy replayed over history, beside the actual results, read-only."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from application.sla.policy_document import draft_spec
from domain.incident.commands import Acknowledge, Assign, Resolve
from domain.shared_kernel.actor import Actor
from domain.shared_kernel.command_context import Context
from infra.cli import main as cli
from projections.sla.sla_clocks import CLOCK_COLUMNS
from tests.builders import log_command

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
DRAFT = {
    "name": "tighter",
    "targets": {"respond": {"*": "PT10M"}, "resolve": {"P1": "PT1H", "*": "PT3H"}},
}


def _at(moment: datetime) -> Context:
    return Context(by=Actor("alice"), causation_id="req-import", occurred_at=moment)


@pytest.fixture
def history(container):
    """Six incidents imported with source times in January: all within the default targets
    (respond 1 h, resolve 24 h for P3), half of them slower than the draft allows."""
    desk = container.desk
    for n in range(6):
        start = T0 + timedelta(days=n)
        incident = desk.create(log_command(impact=2 if n % 2 else 1, urgency=2), _at(start))
        desk.execute(
            incident.id,
            Assign(group="network" if n % 2 else "desk"),
            _at(start + timedelta(minutes=1)),
        )
        slow = n >= 3
        desk.execute(incident.id, Acknowledge(), _at(start + timedelta(minutes=30 if slow else 5)))
        desk.execute(
            incident.id,
            Resolve(code="fixed", notes=""),
            _at(start + timedelta(hours=5 if slow else 0.5)),
        )
    container.feed.catch_up()
    return container


def _live_rows(container):
    with container.read_db.transaction(read_only=True) as tx:
        return tx.execute(
            f"SELECT {', '.join(CLOCK_COLUMNS)} FROM sla_clocks ORDER BY ticket_id, metric"
        ).fetchall()


def test_a_tighter_draft_shows_lower_compliance_and_leaves_the_live_model_alone(history):
    before = _live_rows(history)
    positions = history.runner("sla_clocks").positions("notifications")
    result = history.what_if.simulate(draft_spec(DRAFT), T0, T0 + timedelta(days=31))
    overall = {r["metric"]: r for r in result["overall"]}
    assert overall["respond"]["actual"] == {"met": 6, "breached": 0, "compliance_percent": 100.0}
    assert overall["respond"]["draft"] == {"met": 3, "breached": 3, "compliance_percent": 50.0}
    assert (
        overall["resolve"]["draft"]["compliance_percent"]
        < overall["resolve"]["actual"]["compliance_percent"]
        == 100.0
    )
    by_priority = {(r["metric"], r["key"]): r for r in result["by_priority"]}
    assert set(by_priority) == {
        ("respond", "P2"),
        ("respond", "P3"),
        ("resolve", "P2"),
        ("resolve", "P3"),
    }
    by_group = {(r["metric"], r["key"]) for r in result["by_group"]}
    assert ("resolve", "network") in by_group and ("resolve", "desk") in by_group
    assert result["events_replayed"] == history.desk.stored_events()
    assert _live_rows(history) == before
    assert history.runner("sla_clocks").positions("notifications") == positions


def test_the_period_bounds_what_counts(history):
    result = history.what_if.simulate(draft_spec(DRAFT), T0, T0 + timedelta(days=2))
    overall = {r["metric"]: r for r in result["overall"]}
    assert overall["respond"]["draft"]["met"] + overall["respond"]["draft"]["breached"] == 2


def test_the_cli_prints_the_comparison(history, tmp_path, monkeypatch, capsys):
    draft = tmp_path / "draft.json"
    draft.write_text(json.dumps(DRAFT))
    monkeypatch.setenv("ITSM_DATA_DIR", str(history.settings.data_dir))
    assert (
        cli.main(
            [
                "sla",
                "simulate",
                "--draft",
                str(draft),
                "--from",
                T0.isoformat(),
                "--to",
                (T0 + timedelta(days=31)).isoformat(),
            ]
        )
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    overall = {r["metric"]: r for r in printed["overall"]}
    assert overall["respond"]["draft"]["compliance_percent"] == 50.0
