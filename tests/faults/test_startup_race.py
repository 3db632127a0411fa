"""The roles of a deployment start at the same moment on one PostgreSQL database (as
docker-compose or an orchestrator starts them): each must come up.

Each process sets up the schema as it starts (`bootstrap`: the event store's tables, types
and functions, the read models' tables, the relay's, the keys' ...). Run by several
sessions at once, PostgreSQL refuses some of that DDL: on a fresh database two
`CREATE TABLE IF NOT EXISTS` of one table collide on its row type (`duplicate key value
violates unique constraint "pg_type_typname_nsp_index"`), and on an existing schema two
`CREATE OR REPLACE FUNCTION` of one function fail with `tuple concurrently updated`. The
process that loses exits at start-up.

The collision is between database sessions, so the start-ups run here as threads of this
process released by one barrier: real processes (tests/faults/test_postgres_outage.py
first met it, a relay that died at start) collide only about half of the time, since
Python's own start-up spreads them out.
"""

from __future__ import annotations

import threading

from infra.composition_root import bootstrap
from infra.settings import Settings

ROLES = 4  # serve, relay, worker, inbound


def start_together(settings: Settings, count: int = ROLES) -> list[str]:
    """`count` start-ups released at one moment; returns how each that failed failed."""
    barrier, failures = threading.Barrier(count), []

    def start_up() -> None:
        barrier.wait()
        try:
            bootstrap(settings).close()
        except Exception as error:  # noqa: BLE001 - the test reports it
            failures.append(f"{type(error).__name__}: {str(error).splitlines()[0][:200]}")

    threads = [threading.Thread(target=start_up) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return failures


def test_roles_starting_together_on_postgresql_all_come_up(tmp_path, pg_database):
    settings = Settings(data_dir=tmp_path, database_url=pg_database)
    outcomes = {"a fresh database": start_together(settings)}
    bootstrap(settings).close()  # the whole schema, whatever happened above
    for round_ in range(1, 4):
        outcomes[f"an existing schema, round {round_}"] = start_together(settings)
    failed = {when: failures for when, failures in outcomes.items() if failures}
    assert not failed, f"start-ups that failed, of {ROLES} at once on: {failed}"
