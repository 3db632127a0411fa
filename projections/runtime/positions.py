"""Where a read model stands: its next position in each feed partition
(projection_positions), and the version it has folded of each aggregate
(projection_versions), by which duplicates that reach the feed are dropped."""

from __future__ import annotations

from collections.abc import Sequence

from projections.runtime.envelope import Envelope
from projections.runtime.read_store import ReadStore, Transaction, rows_where_in


class Positions:
    """The positions and versions of the read model `projection`, in the caller's
    transactions."""

    def __init__(self, db: ReadStore, projection: str) -> None:
        self.db, self.projection = db, projection

    def next_position(self, tx: Transaction, source: str, partition: int, lock: bool) -> int:
        if lock:  # a row must exist to be locked, or two first batches could both apply
            tx.execute(
                "INSERT INTO projection_positions (projection, source, partition_no, next_position)"
                " VALUES (%s, %s, %s, 0) ON CONFLICT DO NOTHING",
                (self.projection, source, partition),
            )
        row = tx.execute(
            "SELECT next_position FROM projection_positions WHERE projection = %s AND source = %s"
            " AND partition_no = %s" + (self.db.for_update if lock else ""),
            (self.projection, source, partition),
        ).fetchone()
        return int(row[0]) if row else 0

    def of_source(self, tx: Transaction, source: str) -> dict[int, int]:
        """The next position in each partition of `source`."""
        rows = tx.execute(
            "SELECT partition_no, next_position FROM projection_positions"
            " WHERE projection = %s AND source = %s",
            (self.projection, source),
        ).fetchall()
        return {int(p): int(n) for p, n in rows}

    def store(self, tx: Transaction, source: str, partition: int, position: int) -> None:
        tx.execute(
            "INSERT INTO projection_positions (projection, source, partition_no, next_position)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (projection, source, partition_no)"
            " DO UPDATE SET next_position = excluded.next_position",
            (self.projection, source, partition, position),
        )

    def new_events(self, tx: Transaction, events: Sequence[Envelope]) -> list[Envelope]:
        """The events past the version seen of their aggregate; records the new versions.

        One read and one write per batch: the versions seen are looked up once for every
        aggregate of the batch and kept up to date while walking it, so that a duplicate
        inside the batch is dropped too.
        """
        new = _past(events, self._versions_seen(tx, {e.aggregate_id for e in events}))
        self._store_versions(tx, {e.aggregate_id: e.aggregate_version for e in new})
        return new

    def _versions_seen(self, tx: Transaction, aggregate_ids: set[str]) -> dict[str, int]:
        rows = rows_where_in(
            tx,
            "SELECT aggregate_id, version FROM projection_versions WHERE projection = %s"
            " AND aggregate_id",
            (self.projection,),
            aggregate_ids,
        )
        return {aggregate_id: int(version) for aggregate_id, version in rows}

    def _store_versions(self, tx: Transaction, latest: dict[str, int]) -> None:
        if latest:
            tx.executemany(
                "INSERT INTO projection_versions (projection, aggregate_id, version)"
                " VALUES (%s, %s, %s) ON CONFLICT (projection, aggregate_id)"
                " DO UPDATE SET version = excluded.version",
                [(self.projection, a, v) for a, v in latest.items()],
            )


def _past(events: Sequence[Envelope], seen: dict[str, int]) -> list[Envelope]:
    """The events past the version seen of their aggregate; `seen` follows them."""
    new = []
    for event in events:
        version = seen.get(event.aggregate_id)
        if version is not None and version >= event.aggregate_version:
            continue
        seen[event.aggregate_id] = event.aggregate_version
        new.append(event)
    return new
