"""The SLA and KPI read models and their queries on PostgreSQL, not only on SQLite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from application.access import Role
from infra.composition_root import Container, bootstrap
from infra.settings import Settings
from infra.sql.database import connect
from tests.builders import FULL_LIFECYCLE, ctx, log_command
from tests.unit.test_kpi_cells_match_recomputation import (
    assert_none,
    differences,
    rollups_added_differences,
)


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


def test_cells_kept_without_yearly_rollups_get_them_on_postgresql(pg_database, monkeypatch):
    db = connect(pg_database)
    try:
        assert_none(rollups_added_differences(db, monkeypatch))
    finally:
        db.close()
