"""The transactional runner that feeds a read model.

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

import logging
import time
from collections.abc import Callable, Sequence

from projections.runtime.envelope import Envelope
from projections.runtime.positions import Positions
from projections.runtime.projection import Projection
from projections.runtime.quarantine import Quarantine, Quarantined, reason
from projections.runtime.read_store import ReadStore, Transaction, rows_where_in, savepoint

# Where the read models, the adapters and the tests import them from.
__all__ = ["Projection", "ProjectionRunner", "Quarantined", "rows_where_in"]

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
IDLE_EVERY = 1.0  # seconds between two runs of a projection's idle work
# How a batch's new events are folded: all at once, or one by one to quarantine what fails.
Fold = Callable[[Transaction, list[Envelope]], None]


class ProjectionRunner:
    """Applies ordered batches of one feed partition to one projection, exactly once."""

    def __init__(self, db: ReadStore, projection: Projection) -> None:
        self.db, self.projection = db, projection
        self._positions = Positions(db, projection.name)
        self._quarantine = Quarantine(projection.name)
        self._idled = 0.0

    def setup(self) -> None:
        self.db.script(_FRAMEWORK_DDL)
        with self.db.transaction() as tx:
            if self._stored_schema(tx) != self.projection.schema_version:
                self._forget(tx, drop=True)
                self._store_schema(tx)
        self.db.script(self.projection.ddl())
        with self.db.transaction() as tx:
            self.projection.migrate(tx)

    def _stored_schema(self, tx: Transaction) -> int | None:
        row = tx.execute(
            "SELECT schema_version FROM projection_schemas WHERE projection = %s",
            (self.projection.name,),
        ).fetchone()
        return None if row is None else int(row[0])

    def _store_schema(self, tx: Transaction) -> None:
        tx.execute(
            "INSERT INTO projection_schemas (projection, schema_version)"
            " VALUES (%s, %s) ON CONFLICT (projection)"
            " DO UPDATE SET schema_version = excluded.schema_version",
            (self.projection.name, self.projection.schema_version),
        )

    def position(self, source: str, partition: int) -> int:
        with self.db.transaction(read_only=True) as tx:
            return self._positions.next_position(tx, source, partition, lock=False)

    def positions(self, source: str) -> dict[int, int]:
        with self.db.transaction(read_only=True) as tx:
            return self._positions.of_source(tx, source)

    # -- batches -------------------------------------------------------------------------
    def apply_batch(
        self,
        source: str,
        partition: int,
        expected: int,
        records: Sequence[tuple[int, Envelope]],
        end: int | None = None,
        behind: int = 0,
    ) -> int:
        """Apply records (position, event) in position order; returns the next position.

        `expected` is where the caller believes the read model stands. If the stored position
        differs (a rebuild reset it, or another member applied the batch), nothing is applied
        and the caller must seek to the returned position. `end` is the position after the
        batch when the feed skipped some positions (a dead-lettered record), so that the
        skip is stored too. `behind`: the records the feed holds after the batch, if known
        (Projection.catching_up). Raises only when the database is away (retry later).
        """
        self.projection.catching_up(behind)
        try:
            moved = self._apply_batch(source, partition, expected, records, end, self._fold)
        except Exception as error:
            if self.db.unavailable(error):
                raise
            log.warning(
                "projection %s could not fold a batch (%r); folding it event by event"
                " to quarantine what fails",
                self.projection.name,
                error,
            )
            moved = self._apply_batch(source, partition, expected, records, end, self._fold_each)
        self.idle()
        return moved

    def quiet(self) -> None:
        """The feed has nothing more for now: the read model has caught up (it is behind by
        nothing: Projection.catching_up), and its idle work may run."""
        self.projection.catching_up(0)
        self.idle()

    def owed(self) -> int:
        """Projection.owed, read now."""
        with self.db.transaction(read_only=True) as tx:
            return self.projection.owed(tx)

    def idle(self, force: bool = False) -> None:
        """The projection's own work besides folding (Projection.idle), at most every
        IDLE_EVERY seconds unless `force`d. Its failure is logged, never the feed's: the
        events it would hold back are not at fault."""
        if not force and time.monotonic() - self._idled < IDLE_EVERY:
            return
        self._idled = time.monotonic()
        try:
            with self.db.transaction() as tx:
                self.projection.idle(tx)
        except Exception as error:
            if self.db.unavailable(error):
                raise
            log.exception("projection %s: its idle work failed", self.projection.name)

    def _apply_batch(
        self,
        source: str,
        partition: int,
        expected: int,
        records: Sequence[tuple[int, Envelope]],
        end: int | None,
        fold: Fold,
    ) -> int:
        with self.db.transaction() as tx:
            stored = self._positions.next_position(tx, source, partition, lock=True)
            fresh = [(pos, event) for pos, event in records if pos >= stored]
            next_position = _next_position(fresh, stored, end)
            if stored != expected or next_position <= stored:
                return stored
            new = self._positions.new_events(tx, [e for _, e in fresh])
            if new:
                fold(tx, self._park_waiting(tx, new))
            self._positions.store(tx, source, partition, next_position)
            return next_position

    def _fold(self, tx: Transaction, events: list[Envelope]) -> None:
        self.projection.apply_many(tx, events)

    def _fold_each(self, tx: Transaction, events: list[Envelope]) -> None:
        """One savepoint per event: what fails is quarantined, the rest is applied."""
        held: set[str] = set()
        for event in events:
            if event.aggregate_id in held:
                self._quarantine.park(tx, event, None)
            elif not self._folded_alone(tx, event):
                held.add(event.aggregate_id)

    def _folded_alone(self, tx: Transaction, event: Envelope) -> bool:
        """Fold one event in a savepoint; if it fails, quarantine it and say so."""
        try:
            with savepoint(tx):
                self.projection.apply_many(tx, [event])
        except Exception as error:
            if self.db.unavailable(error):
                raise
            self._put_in_quarantine(tx, event, error)
            return False
        return True

    def _park_waiting(self, tx: Transaction, events: list[Envelope]) -> list[Envelope]:
        """The events to fold; those of quarantined aggregates wait in the quarantine."""
        held = self._quarantine.held(tx)
        if not held:
            return events
        for event in events:
            if event.aggregate_id in held:
                self._quarantine.park(tx, event, None)
        return [e for e in events if e.aggregate_id not in held]

    def _put_in_quarantine(self, tx: Transaction, event: Envelope, error: BaseException) -> None:
        why = reason(error)
        log.error(
            "projection %s quarantined %s %s at version %d: %s",
            self.projection.name,
            event.aggregate_type,
            event.aggregate_id,
            event.aggregate_version,
            why,
        )
        self._quarantine.park(tx, event, why)

    # -- quarantine ----------------------------------------------------------------------
    def quarantined(self) -> list[Quarantined]:
        """Every quarantined aggregate of this read model, oldest first."""
        with self.db.transaction(read_only=True) as tx:
            return self._quarantine.listing(tx)

    def quarantine_count(self) -> int:
        with self.db.transaction(read_only=True) as tx:
            return len(self._quarantine.held(tx))

    def retry(self, aggregate_id: str | None = None) -> tuple[int, int]:
        """Fold the waiting events of quarantined aggregates again, in version order.

        Returns (aggregates released, aggregates still quarantined). Runs alone (see
        `_exclusive`), so that no event of the aggregate slips past while it is retried.
        """
        with self.db.transaction() as tx:
            self._exclusive(tx)
            held = sorted(self._quarantine.held(tx))
            targets = [a for a in held if aggregate_id in (None, a)]
            released = sum(self._retry_one(tx, a) for a in targets)
        return released, len(targets) - released

    def _retry_one(self, tx: Transaction, aggregate_id: str) -> bool:
        for version, text in self._quarantine.waiting(tx, aggregate_id):
            try:
                with savepoint(tx):
                    self.projection.apply_many(tx, [Envelope.from_json(text.encode())])
            except Exception as error:
                if self.db.unavailable(error):
                    raise
                self._quarantine.still_failing(tx, aggregate_id, version, error)
                return False
            self._quarantine.release(tx, aggregate_id, version)
        return True

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


def _next_position(fresh: Sequence[tuple[int, Envelope]], stored: int, end: int | None) -> int:
    """Where the feed stands after the batch's records not applied yet (`fresh`)."""
    if end is not None:
        return end
    return fresh[-1][0] + 1 if fresh else stored
