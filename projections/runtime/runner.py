"""What a read model is, and the transactional runner that feeds it.

Every batch of events and the feed position it reaches commit in one transaction, so a
crash at any point neither loses an event nor applies one twice. Duplicates that reach the
feed itself (a relay retried after a crash) are dropped by (aggregate id, version).

Failures are of two kinds. A database that is away (`ReadStore.unavailable`) fails the whole
batch, which the feed retries until it is back. Anything else is one event the read model
cannot fold: that event's aggregate is quarantined in this read model (the event, the
error and the time are recorded, and its later events wait behind it), and everything else
flows on. `retry` folds the waiting events again once the cause is fixed.
"""

from __future__ import annotations

import json
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import ClassVar

from projections.runtime.envelope import Envelope
from projections.runtime.read_store import ReadStore, Transaction

_FRAMEWORK_DDL = (
    """CREATE TABLE IF NOT EXISTS projection_positions (
        projection TEXT NOT NULL, source TEXT NOT NULL, partition_no INTEGER NOT NULL,
        next_position BIGINT NOT NULL, PRIMARY KEY (projection, source, partition_no))""",
    """CREATE TABLE IF NOT EXISTS projection_versions (
        projection TEXT NOT NULL, aggregate_id TEXT NOT NULL, version INTEGER NOT NULL,
        PRIMARY KEY (projection, aggregate_id))""",
    """CREATE TABLE IF NOT EXISTS projection_schemas (
        projection TEXT PRIMARY KEY, schema_version INTEGER NOT NULL)""",
    # One row per event waiting in quarantine; `error` is set on the one that failed.
    """CREATE TABLE IF NOT EXISTS projection_quarantine (
        projection TEXT NOT NULL, aggregate_id TEXT NOT NULL, version INTEGER NOT NULL,
        event_type TEXT NOT NULL, envelope TEXT NOT NULL, error TEXT, quarantined_at TEXT NOT NULL,
        PRIMARY KEY (projection, aggregate_id, version))""",
)
log = logging.getLogger(__name__)
# What a stored error message may not carry (PostgreSQL refuses NUL in text).
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


@dataclass(frozen=True)
class Quarantined:
    """One aggregate a read model could not fold, and what waits behind it."""

    projection: str
    aggregate_id: str
    version: int
    event_type: str
    error: str
    quarantined_at: str
    waiting: int


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
        return (
            cls.aggregate_types is None
            or not event_type
            or event_type.partition(".")[0] in cls.aggregate_types
        )

    @abstractmethod
    def ddl(self) -> Sequence[str]:
        """CREATE TABLE/INDEX IF NOT EXISTS statements."""

    @abstractmethod
    def apply(self, tx: Transaction, event: Envelope) -> None:
        """Fold one event into the read model, inside the caller's transaction."""

    def apply_many(self, tx: Transaction, events: Sequence[Envelope]) -> None:
        """Fold new events, in feed order, inside the caller's transaction.

        Override to batch the SQL (one read and one write per row touched instead of per
        event); the outcome must be the same as `apply` of each event in turn.
        """
        for event in events:
            self.apply(tx, event)


class ProjectionRunner:
    """Applies ordered batches of one feed partition to one projection, exactly once."""

    def __init__(self, db: ReadStore, projection: Projection) -> None:
        self.db, self.projection = db, projection

    def setup(self) -> None:
        self.db.script(_FRAMEWORK_DDL)
        name, version = self.projection.name, self.projection.schema_version
        with self.db.transaction() as tx:
            row = tx.execute(
                "SELECT schema_version FROM projection_schemas WHERE projection = %s", (name,)
            ).fetchone()
            if row is None or int(row[0]) != version:
                self._forget(tx, drop=True)
                tx.execute(
                    "INSERT INTO projection_schemas (projection, schema_version)"
                    " VALUES (%s, %s) ON CONFLICT (projection)"
                    " DO UPDATE SET schema_version = excluded.schema_version",
                    (name, version),
                )
        self.db.script(self.projection.ddl())

    def position(self, source: str, partition: int) -> int:
        with self.db.transaction(read_only=True) as tx:
            return self._position(tx, source, partition, lock=False)

    def positions(self, source: str) -> dict[int, int]:
        with self.db.transaction(read_only=True) as tx:
            rows = tx.execute(
                "SELECT partition_no, next_position FROM projection_positions"
                " WHERE projection = %s AND source = %s",
                (self.projection.name, source),
            ).fetchall()
        return {int(p): int(n) for p, n in rows}

    def apply_batch(
        self,
        source: str,
        partition: int,
        expected: int,
        records: Sequence[tuple[int, Envelope]],
        end: int | None = None,
    ) -> int:
        """Apply records (position, event) in position order; returns the next position.

        `expected` is where the caller believes the read model stands. If the stored position
        differs (a rebuild reset it, or another member applied the batch), nothing is applied
        and the caller must seek to the returned position. `end` is the position after the
        batch when the feed skipped some positions (a dead-lettered record), so that the
        skip is stored too. Raises only when the database is away (retry later).
        """
        try:
            return self._apply_batch(source, partition, expected, records, end, self._fold)
        except Exception as error:
            if self.db.unavailable(error):
                raise
            log.warning(
                "projection %s could not fold a batch (%r); folding it event by event"
                " to quarantine what fails",
                self.projection.name,
                error,
            )
            return self._apply_batch(source, partition, expected, records, end, self._fold_each)

    def _apply_batch(
        self,
        source: str,
        partition: int,
        expected: int,
        records: Sequence[tuple[int, Envelope]],
        end: int | None,
        fold,
    ) -> int:
        with self.db.transaction() as tx:
            stored = self._position(tx, source, partition, lock=True)
            fresh = [(pos, event) for pos, event in records if pos >= stored]
            next_position = end if end is not None else (fresh[-1][0] + 1 if fresh else stored)
            if stored != expected or next_position <= stored:
                return stored
            new = self._new_events(tx, [e for _, e in fresh])
            if new:
                fold(tx, self._park_waiting(tx, new))
            tx.execute(
                "INSERT INTO projection_positions (projection, source, partition_no, next_position)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (projection, source, partition_no)"
                " DO UPDATE SET next_position = excluded.next_position",
                (self.projection.name, source, partition, next_position),
            )
            return next_position

    def _fold(self, tx: Transaction, events: list[Envelope]) -> None:
        self.projection.apply_many(tx, events)

    def _fold_each(self, tx: Transaction, events: list[Envelope]) -> None:
        """One savepoint per event: what fails is quarantined, the rest is applied."""
        held: set[str] = set()
        for event in events:
            if event.aggregate_id in held:
                self._park(tx, event, None)
                continue
            try:
                with _savepoint(tx):
                    self.projection.apply_many(tx, [event])
            except Exception as error:
                if self.db.unavailable(error):
                    raise
                self._quarantine(tx, event, error)
                held.add(event.aggregate_id)

    def _park_waiting(self, tx: Transaction, events: list[Envelope]) -> list[Envelope]:
        """The events to fold; those of quarantined aggregates wait in the quarantine."""
        held = self._held(tx)
        if not held:
            return events
        for event in events:
            if event.aggregate_id in held:
                self._park(tx, event, None)
        return [e for e in events if e.aggregate_id not in held]

    def _held(self, tx: Transaction) -> set[str]:
        rows = tx.execute(
            "SELECT DISTINCT aggregate_id FROM projection_quarantine WHERE projection = %s",
            (self.projection.name,),
        ).fetchall()
        return {row[0] for row in rows}

    def _quarantine(self, tx: Transaction, event: Envelope, error: BaseException) -> None:
        reason = _reason(error)
        log.error(
            "projection %s quarantined %s %s at version %d: %s",
            self.projection.name,
            event.aggregate_type,
            event.aggregate_id,
            event.aggregate_version,
            reason,
        )
        self._park(tx, event, reason)

    def _park(self, tx: Transaction, event: Envelope, error: str | None) -> None:
        tx.execute(
            "INSERT INTO projection_quarantine (projection, aggregate_id, version, event_type,"
            " envelope, error, quarantined_at) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (projection, aggregate_id, version) DO NOTHING",
            (
                self.projection.name,
                event.aggregate_id,
                event.aggregate_version,
                _printable(event.type),
                _envelope_text(event),
                error,
                _now(),
            ),
        )

    # -- quarantine ----------------------------------------------------------------------
    def quarantined(self) -> list[Quarantined]:
        """Every quarantined aggregate of this read model, oldest first."""
        with self.db.transaction(read_only=True) as tx:
            rows = tx.execute(
                "SELECT q.aggregate_id, q.version, q.event_type, q.error, q.quarantined_at,"
                " (SELECT COUNT(*) FROM projection_quarantine w WHERE w.projection = q.projection"
                " AND w.aggregate_id = q.aggregate_id) FROM projection_quarantine q"
                " WHERE q.projection = %s AND q.version = (SELECT MIN(m.version) FROM"
                " projection_quarantine m WHERE m.projection = q.projection"
                " AND m.aggregate_id = q.aggregate_id) ORDER BY q.quarantined_at",
                (self.projection.name,),
            ).fetchall()
        return [
            Quarantined(
                self.projection.name,
                r[0],
                int(r[1]),
                r[2],
                r[3] or "(not recorded: it waits behind a retried event)",
                r[4],
                int(r[5]),
            )
            for r in rows
        ]

    def quarantine_count(self) -> int:
        with self.db.transaction(read_only=True) as tx:
            return len(self._held(tx))

    def retry(self, aggregate_id: str | None = None) -> tuple[int, int]:
        """Fold the waiting events of quarantined aggregates again, in version order.

        Returns (aggregates released, aggregates still quarantined). Runs alone (see
        `_exclusive`), so that no event of the aggregate slips past while it is retried.
        """
        with self.db.transaction() as tx:
            self._exclusive(tx)
            held = sorted(self._held(tx))
            targets = [a for a in held if aggregate_id in (None, a)]
            released = sum(self._retry_one(tx, a) for a in targets)
        return released, len(targets) - released

    def _retry_one(self, tx: Transaction, aggregate_id: str) -> bool:
        rows = tx.execute(
            "SELECT version, envelope FROM projection_quarantine"
            " WHERE projection = %s AND aggregate_id = %s ORDER BY version",
            (self.projection.name, aggregate_id),
        ).fetchall()
        for version, text in rows:
            try:
                with _savepoint(tx):
                    self.projection.apply_many(tx, [Envelope.from_json(text.encode())])
            except Exception as error:
                if self.db.unavailable(error):
                    raise
                self._still_failing(tx, aggregate_id, int(version), error)
                return False
            tx.execute(
                "DELETE FROM projection_quarantine WHERE projection = %s"
                " AND aggregate_id = %s AND version = %s",
                (self.projection.name, aggregate_id, version),
            )
        return True

    def _still_failing(
        self, tx: Transaction, aggregate_id: str, version: int, error: BaseException
    ) -> None:
        tx.execute(
            "UPDATE projection_quarantine SET error = %s, quarantined_at = %s"
            " WHERE projection = %s AND aggregate_id = %s AND version = %s",
            (_reason(error), _now(), self.projection.name, aggregate_id, version),
        )

    def reset(self) -> None:
        """Empty the read model and forget every position: the next feed starts at 0."""
        with self.db.transaction() as tx:
            self._exclusive(tx)
            self._forget(tx, drop=False)

    def _exclusive(self, tx: Transaction) -> None:
        """Wait for the batches in flight and hold new ones back until this transaction
        ends: every batch begins by writing its position row, which this lock excludes
        (SQLite's write lock already does the same)."""
        if self.db.dialect == "postgresql":
            tx.execute("LOCK TABLE projection_positions IN SHARE ROW EXCLUSIVE MODE")

    def _forget(self, tx: Transaction, drop: bool) -> None:
        for table in self.projection.tables:
            tx.execute(f"DROP TABLE IF EXISTS {table}" if drop else f"DELETE FROM {table}")
        for table in ("projection_positions", "projection_versions", "projection_quarantine"):
            tx.execute(f"DELETE FROM {table} WHERE projection = %s", (self.projection.name,))

    def _position(self, tx: Transaction, source: str, partition: int, lock: bool) -> int:
        if lock:  # a row must exist to be locked, or two first batches could both apply
            tx.execute(
                "INSERT INTO projection_positions (projection, source, partition_no, next_position)"
                " VALUES (%s, %s, %s, 0) ON CONFLICT DO NOTHING",
                (self.projection.name, source, partition),
            )
        row = tx.execute(
            "SELECT next_position FROM projection_positions WHERE projection = %s AND source = %s"
            " AND partition_no = %s" + (self.db.for_update if lock else ""),
            (self.projection.name, source, partition),
        ).fetchone()
        return int(row[0]) if row else 0

    def _new_events(self, tx: Transaction, events: Sequence[Envelope]) -> list[Envelope]:
        """The events past the version seen of their aggregate; records the new versions.

        One read and one write per batch: the versions seen are looked up once for every
        aggregate of the batch and kept up to date while walking it, so that a duplicate
        inside the batch is dropped too.
        """
        seen = dict(
            rows_where_in(
                tx,
                "SELECT aggregate_id, version FROM projection_versions WHERE projection = %s"
                " AND aggregate_id",
                (self.projection.name,),
                {e.aggregate_id for e in events},
            )
        )
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
                [(self.projection.name, a, v) for a, v in latest.items()],
            )
        return new


def rows_where_in(
    tx: Transaction, sql: str, params: Sequence, keys, chunk: int = 500
) -> list[tuple]:
    """Rows of `sql` (ending in a column name) + ` IN (...keys)`, in chunks of bound keys."""
    keys, rows = list(keys), []
    for start in range(0, len(keys), chunk):
        part = keys[start : start + chunk]
        rows += tx.execute(
            f"{sql} IN ({', '.join(['%s'] * len(part))})", [*params, *part]
        ).fetchall()
    return rows


@contextmanager
def _savepoint(tx: Transaction) -> Iterator[None]:
    """Undo only this part of the transaction if it fails (both engines support it)."""
    tx.execute("SAVEPOINT fold")
    try:
        yield
    except BaseException:
        tx.execute("ROLLBACK TO SAVEPOINT fold")
        tx.execute("RELEASE SAVEPOINT fold")
        raise
    tx.execute("RELEASE SAVEPOINT fold")


def _printable(text: str) -> str:
    return _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], text)


def _reason(error: BaseException) -> str:
    return _printable(f"{type(error).__name__}: {error}")[:2000]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _envelope_text(event: Envelope) -> str:
    """The event as JSON text any database stores: control characters and lone surrogates,
    which a poison event may carry, are escaped."""
    return json.dumps(event.__dict__, default=datetime.isoformat, ensure_ascii=True)
