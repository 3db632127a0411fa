"""A KPI read model rebuilt from offset 0 on the in-process feed folds its facts first, then
counts every incident whole; `catch_up` returns once it has, readiness having counted what
was left meanwhile."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from infra.composition_root import bootstrap
from infra.settings import Settings
from projections.kpi import kpi_facts
from projections.kpi.kpi_cell_store import NONE_COUNTED
from projections.kpi.kpi_queries import kpis
from tests.builders import FULL_LIFECYCLE, ctx, log_command
from tests.oracle import kpi_recomputation as oracle


def test_catch_up_returns_once_a_rebuilt_kpi_read_model_counts_every_incident(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(kpi_facts, "BULK_BEHIND", 20)  # batches of 10: far behind at first
    monkeypatch.setattr(kpi_facts, "BUILD_CHUNK", 1)  # one incident per step of the build
    monkeypatch.setattr(kpi_facts, "BUILD_SECONDS", 0.0)  # one step per run of the idle work
    steps: list[str] = []
    build = kpi_facts.KpiProjection._build

    def counted(self, tx, upto):
        steps.append(upto)
        build(self, tx, upto)

    monkeypatch.setattr(kpi_facts.KpiProjection, "_build", counted)
    container = bootstrap(Settings(data_dir=tmp_path, relay_batch_size=10))
    try:
        for _ in range(12):  # more than one idle run counts, to be seen to fall
            incident = container.desk.create(log_command(), ctx())
            for command in FULL_LIFECYCLE:
                container.desk.execute(incident.id, command, ctx())
        container.feed.catch_up()
        assert steps[0] == NONE_COUNTED and len(steps) == 12  # from none, one at a time
        assert steps == sorted(steps)  # in the order they were opened
        assert container.runner("kpis").owed() == 0
        now = datetime.now(timezone.utc) + timedelta(days=1)
        with container.read_db.transaction(read_only=True) as tx:
            new = kpis(tx, period="day", now=now)
            old = oracle.kpis(tx, period="day", now=now, sla=True)
        assert sum(r["opened"] for r in new) == 12
        assert [r["resolved"] for r in new] == [r["resolved"] for r in old]
        assert [r["sla_compliance"] for r in new] == [r["sla_compliance"] for r in old]
    finally:
        container.close()
