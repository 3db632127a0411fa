"""The SLA and KPI read models and their queries on PostgreSQL, not only on SQLite."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from application.access import Role
from infra.composition_root import Container, bootstrap
from infra.settings import Settings
from infra.sql.database import connect
from projections.kpi import kpi_facts
from projections.kpi.kpi_facts import KpiProjection
from projections.kpi.kpi_queries import kpis
from projections.runtime.runner import ProjectionRunner
from projections.sla.sla_clocks import SlaClocksProjection
from tests.builders import FULL_LIFECYCLE, ctx, log_command
from tests.oracle import kpi_recomputation as oracle
from tests.unit.test_kpi_cells_match_recomputation import (
    _feed,
    _late,
    assert_none,
    cell_differences,
    differences,
    load_in_batches,
    rebuild,
    rollups_added_differences,
)
from tests.unit.test_kpis import NOW, T0, Incident, h
from tests.unit.test_sla_support import policy_envelope, spec


@pytest.fixture
def pg_container(tmp_path, pg_database) -> Iterator[Container]:
    container = bootstrap(Settings(data_dir=tmp_path, database_url=pg_database))
    try:
        yield container
    finally:
        container.close()


def test_sla_and_kpi_queries_answer_on_postgresql(pg_container):
    commands = [c for c in FULL_LIFECYCLE if not type(c).__name__.startswith("RecordSla")]
    ids = []
    for _ in range(3):
        incident = pg_container.desk.create(log_command(), ctx())
        for command in commands:
            pg_container.desk.execute(incident.id, command, ctx())
        ids.append(str(incident.id))
    pg_container.feed.catch_up()
    client = TestClient(create_app(pg_container), raise_server_exceptions=True)
    headers = {"Authorization": f"Bearer {pg_container.keys.create(Role.ADMIN, 'pg')}"}

    clocks = client.get(f"/v1/incidents/{ids[0]}/sla", headers=headers)
    assert clocks.status_code == 200, clocks.text
    metrics = {c["metric"] for c in clocks.json()["clocks"]}
    assert {"respond", "resolve"} <= metrics
    compliance = client.get("/v1/sla/compliance", params={"by": "priority"}, headers=headers)
    assert compliance.status_code == 200, compliance.text
    kpis = client.get("/v1/kpis", params={"period": "day"}, headers=headers)
    assert kpis.status_code == 200, kpis.text
    rows = kpis.json()["rows"]
    assert sum(r["opened"] for r in rows) == 3
    assert sum(r["resolved"] for r in rows) == 3
    assert (
        client.get(
            "/v1/kpis", params={"period": "day"}, headers={**headers, "Accept": "text/csv"}
        ).status_code
        == 200
    )


def test_kpi_cells_equal_the_recomputation_on_postgresql(pg_database):
    db = connect(pg_database)
    try:
        assert_none(differences(db, seed=4))
    finally:
        db.close()


def test_cells_built_after_a_rebuild_on_postgresql_are_the_rows_the_fold_writes(
    pg_database, tmp_path, monkeypatch
):
    """The cells built after a rebuild, on PostgreSQL, against the fold on SQLite."""
    monkeypatch.setattr(kpi_facts, "BUILD_CHUNK", 7)
    feed = _late(_feed(6, 80), at=len(_feed(6, 80)) // 2 + 40)
    db, folded = connect(pg_database), connect(f"sqlite:///{tmp_path / 'folded.db'}")
    try:
        rebuild(db, feed).idle(force=True)
        load_in_batches(folded, feed, random.Random(6)).idle(force=True)
        assert_none(cell_differences(folded, db))
    finally:
        db.close()
        folded.close()


def test_cells_kept_without_yearly_rollups_get_them_on_postgresql(pg_database, monkeypatch):
    db = connect(pg_database)
    try:
        assert_none(rollups_added_differences(db, monkeypatch))
    finally:
        db.close()


def test_a_verdict_counted_while_another_member_folds_its_resolution_is_not_lost(
    pg_database, monkeypatch
):
    """Two members of the KPI read model: one folds an incident's resolution while the other
    counts the SLA read model's verdict on it. Had both read the incident as it was, the
    resolution would be counted without the verdict and the verdict as counted; the second
    waits for the first instead (kpi_cell_store.hold_cells)."""
    db = connect(pg_database)
    try:
        sla, folding, following = _members(db)
        feed = [policy_envelope(spec(), at=T0 - timedelta(days=1))]
        Incident(feed, T0, number="INC1").assign(T0 + h(1), "desk").resolve(T0 + h(2))
        before = len(feed) - 1  # everything but the resolution
        sla.apply_batch("t", 0, 0, list(enumerate(feed[:before])))
        folding.apply_batch("t", 0, 0, list(enumerate(feed[:before])))
        sla.apply_batch("t", 0, before, [(before, feed[before])])  # the resolve clock: met
        _pause_the_fold_after_it_reads(monkeypatch, "folding")
        fold = threading.Thread(
            target=folding.apply_batch,
            args=("t", 0, before, [(before, feed[before])]),
            name="folding",
        )
        fold.start()
        _PAUSED.wait(10)
        following.idle(force=True)  # counts the verdict, or waits for the fold to end
        _FOLLOWED.set()
        fold.join(10)
        with db.transaction(read_only=True) as tx:
            new = kpis(tx, period="week", now=NOW)
            old = oracle.kpis(tx, period="week", now=NOW, sla=True)
        assert [r["sla_compliance"] for r in new] == [r["sla_compliance"] for r in old]
        assert new[0]["sla_compliance"] == 1.0
    finally:
        db.close()


_PAUSED, _FOLLOWED = threading.Event(), threading.Event()


def _members(db) -> tuple[ProjectionRunner, ProjectionRunner, ProjectionRunner]:
    runners = (
        ProjectionRunner(db, SlaClocksProjection()),
        ProjectionRunner(db, KpiProjection(sla_clocks=True)),
        ProjectionRunner(db, KpiProjection(sla_clocks=True)),
    )
    for runner in runners:
        runner.setup()
    return runners


def _pause_the_fold_after_it_reads(monkeypatch, thread: str) -> None:
    """The fold in `thread` stops after reading its incidents' verdicts until the other
    member has followed them, or for 1.5 s if that member waits for it."""
    _PAUSED.clear()
    _FOLLOWED.clear()
    load = kpi_facts.Extras.load

    def paused(tx, incident_ids, intervals=True):
        extras = load(tx, incident_ids, intervals)
        if threading.current_thread().name == thread:
            _PAUSED.set()
            _FOLLOWED.wait(1.5)
        return extras

    monkeypatch.setattr(kpi_facts.Extras, "load", staticmethod(paused))
