"""A database away for a while and back is used again within seconds, by the event store's
pool and by the read models' alike (infra/sql/database.py, RECONNECT_SECONDS): a pool that
kept doubling its wait between tries would next try long after the server is back."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from infra.event_store.postgres_env import eventsourcing_env
from infra.sql.database import PostgresDatabase
from tests.integration.test_postgres_server import Tickets

# Long enough that a pool backing off from the start of the outage (1, 2, 4, 8, 16 s...)
# next tries about ten seconds after the server is back.
OUTAGE = 20.0
BOUND = 5.0  # the pool's timeout: a request waits that long for a connection


def _works(attempt: Callable[[], object]) -> bool:
    try:
        attempt()
    except Exception:
        return False
    return True


def _seconds_until_it_works(attempt: Callable[[], object], since: float) -> float:
    while not _works(attempt):
        assert time.monotonic() - since < 60, "still failing a minute after the return"
        time.sleep(0.1)
    return time.monotonic() - since


@pytest.mark.slow
def test_both_pools_use_the_database_again_within_seconds_of_its_return(own_postgres):
    read = PostgresDatabase(own_postgres.url)
    store = Tickets(env=eventsourcing_env(own_postgres.url))

    def query() -> None:
        with read.transaction() as tx:
            tx.execute("SELECT 1")

    def command() -> None:
        store.open("is the database back?")

    try:
        assert _works(query) and _works(command)
        own_postgres.crash()
        down = time.monotonic()
        while time.monotonic() - down < OUTAGE:  # requests keep coming meanwhile
            assert not _works(query) and not _works(command)
            time.sleep(0.5)
        own_postgres.start()
        back = time.monotonic()
        took = {
            "read models": _seconds_until_it_works(query, back),
            "event store": _seconds_until_it_works(command, back),
        }
    finally:
        store.close()
        read.close()
    print(f"seconds from the return until it works: {took}")
    assert max(took.values()) < BOUND, took
