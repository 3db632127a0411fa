"""The event store on PostgreSQL, refusing at once while the database is away.

eventsourcing retries every recorder call that raises OperationalError ten times, and a
pool timeout (no connection within POSTGRES_CONNECT_TIMEOUT) is one: with the database
away, a command would wait out ten pool timeouts before failing, and its client would
learn nothing for a minute. Here a pool timeout is raised as `StoreUnavailable`, which is not
retried; its cause still tells `infra.sql.unavailable` that the database is away (a 503).

Events are written once. The library also retries a failed write; but when a connection
fails after its COMMIT reached the server, the retry fails on the versions its own first
attempt took, and the desk would take that for a lost race and run the command again,
storing it twice. A write that fails on its connection is `CommitOutcomeUnknown` instead:
not retried, answered 503, and the caller decides.
Selected by PERSISTENCE_MODULE (infra/event_store/postgres_env.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from eventsourcing.persistence import (
    InterfaceError,
    OperationalError,
    PersistenceError,
    StoredEvent,
)
from eventsourcing.postgres import (
    PostgresApplicationRecorder,
    PostgresDatastore,
    PostgresFactory,
)
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL
from psycopg_pool import PoolTimeout

from infra.audit.event_chain import Chain, Dialect, WrittenLinks
from infra.sql.database import RECONNECT_SECONDS


class StoreUnavailable(PersistenceError):
    """No connection to the event store in time: the database is away."""


class CommitOutcomeUnknown(PersistenceError):
    """The connection failed while events were written: they may or may not be stored."""


# The library's write without its retry decorator.
_insert_once = PostgresApplicationRecorder.insert_events.__wrapped__


class WriteOnceRecorder(PostgresApplicationRecorder):
    """Also extends the hash chain (infra/audit/event_chain.py) in the transaction that
    inserts the events, under the table lock the library takes for gap-free positions."""

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.chain = Chain(
            Dialect("%s", "BYTEA", self.events_table_name, "notification_id", "BIGINT")
        )
        for statement in self.chain.ddl():
            self.sql_create_statements.append(SQL(statement))  # type: ignore[arg-type]
        self._written = WrittenLinks()

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        self._written.links = []
        try:
            result: Sequence[int] | None = _insert_once(self, stored_events, **kwargs)
        except (InterfaceError, OperationalError) as error:
            raise CommitOutcomeUnknown(str(error)) from error
        self.chain.committed(self._written.links)
        return result

    def _fetch_ids_after_insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        positions = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        self._written.links = self.chain.links(curs, stored_events, positions or [])
        return positions

    def adopt(self) -> int:
        """Chain the events recorded before the chain existed; returns how many."""
        return self.chain.adopt(self._locked)

    @contextmanager
    def _locked(self) -> Iterator[Cursor[DictRow]]:
        """A committing transaction holding the table lock writers take."""
        with self.datastore.transaction(commit=True) as curs:
            self._lock_table(curs)
            yield curs


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
    application_recorder_class = WriteOnceRecorder

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self.datastore.__class__ = FailFastDatastore  # same state, one method more careful
        # The library does not pass it on: retrying a lost connection for minutes, with
        # ever longer waits, would keep commands refused long after the database is back.
        self.datastore.pool.reconnect_timeout = RECONNECT_SECONDS
