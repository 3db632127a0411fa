"""Analysts' queries over a whole read model read their range from an index, however large the
read model grows (SQLite's plans: PostgreSQL plans with its statistics)."""

from __future__ import annotations

from infra.sql.database import SqliteDatabase
from projections.kpi.kpi_facts import KpiProjection
from projections.kpi.kpi_quantiles import _STALE_BINS, RANKED
from projections.runtime.projection import Projection
from projections.runtime.runner import ProjectionRunner
from projections.sla.sla_clocks import SlaClocksProjection
from projections.sla.sla_queries import _DECIDED


def plan(tmp_path, projection: Projection, sql: str, params: tuple = ()) -> list[str]:
    """The reads of the statement's plan (scans and searches of tables and indexes)."""
    db = SqliteDatabase(tmp_path / "plans.db")
    ProjectionRunner(db, projection).setup()
    with db.transaction(read_only=True) as tx:
        rows = tx.execute("EXPLAIN QUERY PLAN " + sql, list(params)).fetchall()
    db.close()
    steps = [str(row[3]) for row in rows]
    return [s for s in steps if s.startswith(("SCAN", "SEARCH")) and "subquery" not in s]


def test_the_quantile_refresh_finds_the_stale_cells_first_then_only_their_bins(tmp_path):
    reads = plan(tmp_path, KpiProjection(), RANKED.format(bins=_STALE_BINS))
    assert reads[0].startswith("SEARCH q USING COVERING INDEX kpi_ttr_quantiles_stale"), reads
    assert reads[1].startswith("SEARCH b USING PRIMARY KEY (zone=? AND grain=? AND dim=?"), reads
    assert not [step for step in reads if step.startswith("SCAN b")], reads


def test_sla_compliance_reads_the_clocks_decided_or_due_in_its_range_only(tmp_path):
    reads = plan(tmp_path, SlaClocksProjection(), _DECIDED, ("a", "b", "a", "b"))
    assert reads == [
        "SEARCH sla_clocks USING INDEX sla_clocks_decided (decided_at>? AND decided_at<?)",
        "SEARCH sla_clocks USING INDEX sla_clocks_due (status=? AND due_at>? AND due_at<?)",
    ], reads
