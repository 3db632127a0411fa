"""What a read model is, and the transactional runner that feeds it.

Every batch of events and the feed position it reaches commit in one transaction, so a
crash at any point neither loses an event nor applies one twice. Duplicates that reach the
feed itself (a relay retried after a crash) are dropped by (aggregate id, version).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from infra.sql import Database, Tx
from projections.envelope import Envelope

_FRAMEWORK_DDL = (
    """CREATE TABLE IF NOT EXISTS projection_positions (
        projection TEXT NOT NULL, source TEXT NOT NULL, partition_no INTEGER NOT NULL,
        next_position BIGINT NOT NULL, PRIMARY KEY (projection, source, partition_no))""",
    """CREATE TABLE IF NOT EXISTS projection_versions (
        projection TEXT NOT NULL, aggregate_id TEXT NOT NULL, version INTEGER NOT NULL,
        PRIMARY KEY (projection, aggregate_id))""",
    """CREATE TABLE IF NOT EXISTS projection_schemas (
        projection TEXT PRIMARY KEY, schema_version INTEGER NOT NULL)""",
)


class Projection(ABC):
    name: ClassVar[str]
    tables: ClassVar[tuple[str, ...]]
    # Bump when the tables change shape: setup then drops them and the feed replays from 0.
    schema_version: ClassVar[int] = 1
    # The aggregates whose events it folds ("Incident", ...); None: all of them. Feeds
    # skip the others before decoding them: most of a busy feed is often somebody else's.
    aggregate_types: ClassVar[frozenset[str] | None] = None

    @classmethod
    def wants(cls, event_type: str) -> bool:
        """Whether events of this type ("Incident.Assigned") can change the read model;
        an unknown type ("") may."""
        return cls.aggregate_types is None or not event_type or \
            event_type.partition(".")[0] in cls.aggregate_types

    @abstractmethod
    def ddl(self) -> Sequence[str]:
        """CREATE TABLE/INDEX IF NOT EXISTS statements."""

    @abstractmethod
    def apply(self, tx: Tx, event: Envelope) -> None:
        """Fold one event into the read model, inside the caller's transaction."""

    def apply_many(self, tx: Tx, events: Sequence[Envelope]) -> None:
        """Fold new events, in feed order, inside the caller's transaction.

        Override to batch the SQL (one read and one write per row touched instead of per
        event); the outcome must be the same as `apply` of each event in turn.
        """
        for event in events:
            self.apply(tx, event)


class ProjectionRunner:
    """Applies ordered batches of one feed partition to one projection, exactly once."""

    def __init__(self, db: Database, projection: Projection) -> None:
        self.db, self.projection = db, projection

    def setup(self) -> None:
        self.db.script(_FRAMEWORK_DDL)
        name, version = self.projection.name, self.projection.schema_version
        with self.db.transaction() as tx:
            row = tx.execute("SELECT schema_version FROM projection_schemas WHERE projection = %s",
                             (name,)).fetchone()
            if row is None or int(row[0]) != version:
                self._forget(tx, drop=True)
                tx.execute("INSERT INTO projection_schemas (projection, schema_version)"
                           " VALUES (%s, %s) ON CONFLICT (projection)"
                           " DO UPDATE SET schema_version = excluded.schema_version",
                           (name, version))
        self.db.script(self.projection.ddl())

    def position(self, source: str, partition: int) -> int:
        with self.db.transaction(read_only=True) as tx:
            return self._position(tx, source, partition, lock=False)

    def positions(self, source: str) -> dict[int, int]:
        with self.db.transaction(read_only=True) as tx:
            rows = tx.execute(
                "SELECT partition_no, next_position FROM projection_positions"
                " WHERE projection = %s AND source = %s", (self.projection.name, source)).fetchall()
        return {int(p): int(n) for p, n in rows}

    def apply_batch(self, source: str, partition: int, expected: int,
                    records: Sequence[tuple[int, Envelope]], end: int | None = None) -> int:
        """Apply records (position, event) in position order; returns the next position.

        `expected` is where the caller believes the read model stands. If the stored position
        differs (a rebuild reset it, or another member applied the batch), nothing is applied
        and the caller must seek to the returned position. `end` is the position after the
        batch when the feed skipped some positions (a dead-lettered record), so that the
        skip is stored too.
        """
        with self.db.transaction() as tx:
            stored = self._position(tx, source, partition, lock=True)
            fresh = [(pos, event) for pos, event in records if pos >= stored]
            next_position = end if end is not None else (fresh[-1][0] + 1 if fresh else stored)
            if stored != expected or next_position <= stored:
                return stored
            self.projection.apply_many(tx, self._new_events(tx, [e for _, e in fresh]))
            tx.execute(
                "INSERT INTO projection_positions (projection, source, partition_no, next_position)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (projection, source, partition_no)"
                " DO UPDATE SET next_position = excluded.next_position",
                (self.projection.name, source, partition, next_position))
            return next_position

    def reset(self) -> None:
        """Empty the read model and forget every position: the next feed starts at 0."""
        with self.db.transaction() as tx:
            self._forget(tx, drop=False)

    def _forget(self, tx: Tx, drop: bool) -> None:
        for table in self.projection.tables:
            tx.execute(f"DROP TABLE IF EXISTS {table}" if drop else f"DELETE FROM {table}")
        for table in ("projection_positions", "projection_versions"):
            tx.execute(f"DELETE FROM {table} WHERE projection = %s", (self.projection.name,))

    def _position(self, tx: Tx, source: str, partition: int, lock: bool) -> int:
        if lock:  # a row must exist to be locked, or two first batches could both apply
            tx.execute(
                "INSERT INTO projection_positions (projection, source, partition_no, next_position)"
                " VALUES (%s, %s, %s, 0) ON CONFLICT DO NOTHING",
                (self.projection.name, source, partition))
        row = tx.execute(
            "SELECT next_position FROM projection_positions WHERE projection = %s AND source = %s"
            " AND partition_no = %s" + (self.db.for_update if lock else ""),
            (self.projection.name, source, partition)).fetchone()
        return int(row[0]) if row else 0

    def _new_events(self, tx: Tx, events: Sequence[Envelope]) -> list[Envelope]:
        """The events past the version seen of their aggregate; records the new versions.

        One read and one write per batch: the versions seen are looked up once for every
        aggregate of the batch and kept up to date while walking it, so that a duplicate
        inside the batch is dropped too.
        """
        seen = dict(rows_where_in(
            tx, "SELECT aggregate_id, version FROM projection_versions WHERE projection = %s"
            " AND aggregate_id", (self.projection.name,), {e.aggregate_id for e in events}))
        new = []
        for event in events:
            version = seen.get(event.aggregate_id)
            if version is not None and int(version) >= event.aggregate_version:
                continue
            seen[event.aggregate_id] = event.aggregate_version
            new.append(event)
        latest = {e.aggregate_id: e.aggregate_version for e in new}
        if latest:
            tx.executemany(
                "INSERT INTO projection_versions (projection, aggregate_id, version)"
                " VALUES (%s, %s, %s) ON CONFLICT (projection, aggregate_id)"
                " DO UPDATE SET version = excluded.version",
                [(self.projection.name, a, v) for a, v in latest.items()])
        return new


def rows_where_in(tx: Tx, sql: str, params: Sequence, keys, chunk: int = 500) -> list[tuple]:
    """Rows of `sql` (ending in a column name) + ` IN (...keys)`, in chunks of bound keys."""
    keys, rows = list(keys), []
    for start in range(0, len(keys), chunk):
        part = keys[start:start + chunk]
        rows += tx.execute(f"{sql} IN ({', '.join(['%s'] * len(part))})",
                           [*params, *part]).fetchall()
    return rows
