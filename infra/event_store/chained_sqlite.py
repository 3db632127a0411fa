"""The event store on SQLite, with the hash chain written in each recording transaction
(infra/audit/event_chain.py). Selected by PERSISTENCE_MODULE (infra/settings.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import (
    SQLiteApplicationRecorder,
    SQLiteCursor,
    SQLiteDatastore,
    SQLiteFactory,
)

from infra.audit.event_chain import Chain, Dialect, WrittenLinks


class ChainedSQLiteRecorder(SQLiteApplicationRecorder):
    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = "stored_events"):
        self.chain = Chain(Dialect("?", "BLOB", events_table_name, "rowid", "INTEGER"))
        self._written = WrittenLinks()
        super().__init__(datastore, events_table_name)

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *self.chain.ddl()]

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        self._written.links = []
        positions = super().insert_events(stored_events, **kwargs)
        self.chain.committed(self._written.links)  # reached only once the transaction committed
        return positions

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        positions = super()._insert_events(c, stored_events, **kwargs)
        self._written.links = self.chain.links(c, stored_events, positions or [])
        return positions

    def adopt(self) -> int:
        """Chain the events recorded before the chain existed; returns how many."""
        return self.chain.adopt(lambda: self.datastore.transaction(commit=True))


class Factory(SQLiteFactory):
    application_recorder_class = ChainedSQLiteRecorder
