"""A read model whose tables changed shape is dropped and replayed from the start."""

from __future__ import annotations

from domain.incident.commands import Assign, LogIncident
from domain.shared_kernel.actor import Actor
from domain.shared_kernel.command_context import Context
from infra.composition_root import bootstrap
from infra.settings import Settings
from projections.incident import incident_queue as incidents
from projections.incident.incident_queue import IncidentsProjection
from projections.runtime.runner import ProjectionRunner

CTX = Context(Actor("alice"), "req")


class IncidentsV2(IncidentsProjection):
    schema_version = 2


def count(db) -> int:
    with db.transaction(read_only=True) as tx:
        return incidents.search(tx, {}, limit=10, offset=0)[0]


def test_a_new_schema_version_drops_the_tables_and_the_feed_replays_them(tmp_path):
    container = bootstrap(Settings(data_dir=tmp_path))
    incident = container.desk.create(
        LogIncident(title="Disk full", caller="bob", impact=2, urgency=2), CTX
    )
    container.desk.execute(incident.id, Assign(group="storage"), CTX)
    container.feed.catch_up()
    with container.read_db.transaction() as tx:
        tx.execute("UPDATE rm_incidents SET title = 'stale shape'")

    upgraded = ProjectionRunner(container.read_db, IncidentsV2())
    upgraded.setup()
    assert count(container.read_db) == 0 and upgraded.position("notifications", 0) == 0

    container.feed.runners = [upgraded]
    container.feed.catch_up()
    with container.read_db.transaction(read_only=True) as tx:
        row = container.vault.reveal(incidents.get(tx, str(incident.id)))
    assert row["title"] == "Disk full" and row["assignment_group"] == "storage"
    container.close()


def test_an_unchanged_schema_version_keeps_the_read_model(tmp_path):
    container = bootstrap(Settings(data_dir=tmp_path))
    container.desk.create(LogIncident(title="Disk full", caller="bob", impact=2, urgency=2), CTX)
    container.feed.catch_up()
    ProjectionRunner(container.read_db, IncidentsProjection()).setup()
    assert count(container.read_db) == 1
    container.close()
