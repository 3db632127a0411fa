"""The idle work's refresh of stale quantiles (projections/kpi/kpi_quantiles.py) reads the bins
of the stale cells only, whatever the number of bins: at a million incidents they are
millions, and a refresh runs after most batches."""

from __future__ import annotations

from infra.sql.database import SqliteDatabase
from projections.kpi.kpi_facts import KpiProjection
from projections.kpi.kpi_quantiles import _STALE_BINS, RANKED
from projections.runtime.runner import ProjectionRunner


def test_the_refresh_finds_the_stale_cells_first_then_only_their_bins(tmp_path):
    db = SqliteDatabase(tmp_path / "kpi.db")
    ProjectionRunner(db, KpiProjection()).setup()
    with db.transaction(read_only=True) as tx:
        plan = [
            str(row[3])
            for row in tx.execute(
                "EXPLAIN QUERY PLAN " + RANKED.format(bins=_STALE_BINS)
            ).fetchall()
        ]
    db.close()
    reads = [
        step for step in plan if step.startswith(("SCAN", "SEARCH")) and "subquery" not in step
    ]
    assert reads[0].startswith("SEARCH q USING COVERING INDEX kpi_ttr_quantiles_stale"), plan
    assert reads[1].startswith("SEARCH b USING PRIMARY KEY (zone=? AND grain=? AND dim=?"), plan
    assert not [step for step in reads if step.startswith("SCAN b")], plan
