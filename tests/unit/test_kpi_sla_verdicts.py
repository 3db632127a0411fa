"""The KPI cells count the SLA read model's verdicts (docs/kpis.md, *SLA verdicts*): whichever
read model folds an event first, after a rebuild of the SLA read model, and once each."""

from __future__ import annotations

from datetime import timedelta

import pytest

from infra.sql.database import SqliteDatabase
from projections.kpi.kpi_facts import KpiProjection
from projections.kpi.kpi_queries import kpis
from projections.runtime.envelope import Envelope
from projections.runtime.runner import ProjectionRunner
from projections.sla.sla_clocks import SlaClocksProjection
from tests.oracle import kpi_recomputation as oracle
from tests.unit.test_kpis import NOW, T0, Incident, h
from tests.unit.test_sla_support import policy_envelope, spec

ASKED = {"period": "week", "now": NOW}


def _history() -> list[Envelope]:
    feed: list[Envelope] = [policy_envelope(spec(), at=T0 - timedelta(days=1))]
    # P3: resolve within 24 business hours, around the clock by default.
    Incident(feed, T0, number="INC1").assign(T0 + h(1), "desk").resolve(T0 + h(2))
    Incident(feed, T0, number="INC2").assign(T0 + h(1), "desk").resolve(T0 + h(30))
    late = Incident(feed, T0 + h(3), number="INC3").assign(T0 + h(4), "net")
    late.resolve(T0 + h(5)).reopen(T0 + h(6)).resolve(T0 + h(40))
    Incident(feed, T0 + h(7), number="INC4").assign(T0 + h(8), "net")
    return feed


@pytest.fixture
def db(tmp_path):
    database = SqliteDatabase(tmp_path / "read.db")
    yield database
    database.close()


def _runners(db) -> tuple[ProjectionRunner, ProjectionRunner]:
    sla, kpi = (
        ProjectionRunner(db, SlaClocksProjection()),
        ProjectionRunner(db, KpiProjection(sla_clocks=True)),
    )
    for runner in (sla, kpi):
        runner.setup()
    return sla, kpi


def _feed(runner: ProjectionRunner, feed: list[Envelope]) -> None:
    runner.apply_batch("test", 0, runner.position("test", 0), list(enumerate(feed)))


def _both(db, group_by: str | None = None) -> tuple[list[dict], list[dict]]:
    with db.transaction(read_only=True) as tx:
        return (
            kpis(tx, group_by=group_by, **ASKED),
            oracle.kpis(tx, group_by=group_by, sla=True, **ASKED),
        )


def _sla_figures(rows: list[dict]) -> list[tuple]:
    return [(r["sla_compliance"], r["ttr_business_mean_hours"]) for r in rows]


def test_verdicts_folded_after_the_kpis_reach_the_cells_when_the_kpis_are_idle(db):
    sla, kpi = _runners(db)
    feed = _history()
    _feed(kpi, feed)  # the KPI read model first: no verdict yet
    _feed(sla, feed)
    assert kpi.owed() == 4  # each incident's resolve clock, not counted yet: readiness says so
    kpi.idle(force=True)
    assert kpi.owed() == 0
    new, old = _both(db)
    assert _sla_figures(new) == _sla_figures(old)
    assert new[0]["sla_compliance"] == pytest.approx(1 / 3)  # INC1 met; INC2, INC3 breached
    assert new[0]["ttr_business_mean_hours"] is not None


def test_following_twice_counts_each_verdict_once(db):
    sla, kpi = _runners(db)
    feed = _history()
    _feed(sla, feed)
    _feed(kpi, feed)
    kpi.idle(force=True)
    kpi.idle(force=True)
    for group_by in (None, "group", "priority"):
        new, old = _both(db, group_by)
        assert _sla_figures(new) == _sla_figures(old)


def test_a_batch_that_changes_no_resolve_clock_is_followed_too(db):
    """Acknowledging stops the respond clock only: the SLA read model numbers that batch,
    and the KPIs, with no verdict to count from it, follow it all the same (else they would
    wait for the next verdict, and whoever waits for them with it)."""
    sla, kpi = _runners(db)
    feed = _history()
    incident = Incident(feed, T0 + h(9), number="INC5").assign(T0 + h(10), "desk")
    for runner in (sla, kpi):
        _feed(runner, feed)
    kpi.idle(force=True)
    incident.feed = later = []
    incident.ack(T0 + h(11))
    for runner in (sla, kpi):
        runner.apply_batch("test", 0, runner.position("test", 0), [(len(feed), later[0])])
    with db.transaction(read_only=True) as tx:
        latest = _meta(tx, "sla_meta", "seq")
        touched = tx.execute("SELECT metric FROM sla_clocks WHERE seq = %s", [latest]).fetchall()
        assert [row[0] for row in touched] == ["respond"]
    kpi.idle(force=True)
    with db.transaction(read_only=True) as tx:
        created = _meta(tx, "sla_meta", "created")
        assert _meta(tx, "kpi_meta", "sla_follow") == f"{created}:{latest}"


def _meta(tx, table: str, name: str) -> str:
    return str(tx.execute(f"SELECT value FROM {table} WHERE name = %s", [name]).fetchone()[0])


def test_a_rebuilt_sla_read_model_is_followed_again(db):
    sla, kpi = _runners(db)
    feed = _history()
    _feed(sla, feed)
    _feed(kpi, feed)
    kpi.idle(force=True)
    before = _both(db)[0]
    sla.reset()
    _feed(sla, feed[:3])  # its numbering starts again, below the one the KPIs followed
    kpi.idle(force=True)
    _feed(sla, feed)
    kpi.idle(force=True)
    new, old = _both(db)
    assert _sla_figures(new) == _sla_figures(old) == _sla_figures(before)
