"""The event store on PostgreSQL, refusing at once while the database is away.

eventsourcing retries every recorder call that raises OperationalError ten times, and a
pool timeout (no connection within POSTGRES_CONNECT_TIMEOUT) is one: with the database
away, a command would wait out ten pool timeouts before failing, and its client would
learn nothing for a minute. Here a pool timeout is raised as `StoreUnavailable`, which is not
retried; its cause still tells `infra.sql.unavailable` that the database is away (a 503).
Selected by PERSISTENCE_MODULE (infra/event_store/postgres_env.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from eventsourcing.persistence import OperationalError, PersistenceError
from eventsourcing.postgres import PostgresDatastore, PostgresFactory
from psycopg_pool import PoolTimeout


class StoreUnavailable(PersistenceError):
    """No connection to the event store in time: the database is away."""


class FailFastDatastore(PostgresDatastore):
    @contextmanager
    def get_connection(self) -> Iterator[Any]:
        try:
            with super().get_connection() as connection:
                yield connection
        except OperationalError as error:
            if isinstance(error.__cause__, PoolTimeout):
                raise StoreUnavailable(str(error)) from error.__cause__
            raise


class Factory(PostgresFactory):
    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self.datastore.__class__ = FailFastDatastore  # same state, one method more careful
