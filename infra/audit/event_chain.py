"""The hash chain of the event store, kept by its recorder in the transaction that records
the events (infra/audit/proof.py says what a hash covers).

`event_chain` holds one row per stored event, keyed by its position in the notification
log: its aggregate, version and hash, and the hash of its aggregate's previous event. The
chain is extended by whoever records events, under the store's own write serialisation
(SQLite's single writer, the PostgreSQL recorder's table lock), so the previous event of
the log is the last row written.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from infra.audit.proof import GENESIS, event_hash

TABLE = "event_chain"
# The Kafka header that carries an event's hash (hex) with the event.
EVENT_HASH_HEADER = "event_hash"
CHECKPOINTS = "audit_checkpoints"
# Aggregates whose last chained event is remembered between writes: a command's event
# follows its aggregate's previous one without a lookup.
_REMEMBERED = 100_000
_ADOPT_BATCH = 5_000


Heads = dict[UUID, tuple[int, bytes]]  # an aggregate: the version and hash of its last link


@dataclass(frozen=True)
class Dialect:
    mark: str  # the driver's parameter marker
    binary: str  # the column type of a hash
    events: str  # the stored events' table
    position: str  # its notification id column
    key: str  # the column type of a position as the chain's key

    def sql(self, text: str) -> str:
        return text.replace("%s", self.mark)

    def originator(self, originator_id: UUID) -> Any:
        """The aggregate id as the events' table stores it (SQLite: 32 hex digits)."""
        return originator_id.hex if self.mark == "?" else originator_id


@dataclass(frozen=True)
class Link:
    position: int
    originator_id: UUID
    originator_version: int
    hash: bytes
    aggregate_previous: bytes


@runtime_checkable
class ChainedRecorder(Protocol):
    """A recorder that keeps the chain (infra/event_store/chained_sqlite.py and
    fail_fast_postgres.py)."""

    chain: Chain

    def adopt(self) -> int: ...


class WrittenLinks(threading.local):
    """The links a thread's write made, until its transaction has committed."""

    links: list[Link]

    def __init__(self) -> None:
        self.links = []


class Chain:
    """Extends the chain over events just inserted, in their transaction's cursor."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._heads: dict[UUID, tuple[int, bytes]] = {}  # committed: aggregate -> (version, hash)
        self._lock = threading.Lock()
        # The log's last link as this process committed it: the previous one of the next
        # write, unless another writer (process) recorded events in between.
        self._log_head: tuple[int, bytes] | None = None

    def ddl(self) -> list[str]:
        binary = self.dialect.binary
        return [
            # SQLite: INTEGER PRIMARY KEY is the row id itself, one B-tree per row written.
            f"CREATE TABLE IF NOT EXISTS {TABLE} (position {self.dialect.key} PRIMARY KEY,"
            f" originator_id TEXT NOT NULL, originator_version BIGINT NOT NULL,"
            f" hash {binary} NOT NULL, aggregate_previous {binary} NOT NULL)",
            # The signed checkpoints (infra/audit/checkpoints.py), each as its JSON.
            f"CREATE TABLE IF NOT EXISTS {CHECKPOINTS} (seq BIGINT PRIMARY KEY,"
            " position BIGINT NOT NULL, body TEXT NOT NULL)",
        ]

    def links(
        self,
        cursor: Any,
        events: Sequence[StoredEvent],
        positions: Sequence[int],
        heads: Heads | None = None,
    ) -> list[Link]:
        """The links of events inserted at `positions`, written in the same cursor; `heads`
        (aggregate: its last version and hash) is read and kept up to date if given."""
        if not events:
            return []
        previous = self._log_previous(cursor, positions[0])
        heads = {} if heads is None else heads
        links = []
        for event, position in zip(events, positions, strict=True):
            originator_id = _uuid(event.originator_id)
            aggregate_previous = self._aggregate_previous(cursor, event, heads)
            digest = event_hash(
                previous,
                aggregate_previous,
                position,
                originator_id,
                event.originator_version,
                event.topic,
                event.state,
            )
            links.append(
                Link(position, originator_id, event.originator_version, digest, aggregate_previous)
            )
            heads[originator_id] = (event.originator_version, digest)
            previous = digest
        self._write(cursor, links)
        return links

    def committed(self, links: Sequence[Link]) -> None:
        """Remember the aggregates' last hashes once their transaction has committed."""
        if links:
            self._log_head = (links[-1].position, links[-1].hash)
        with self._lock:
            if len(self._heads) > _REMEMBERED:
                self._heads.clear()
            for link in links:
                self._heads[link.originator_id] = (link.originator_version, link.hash)

    def _log_previous(self, cursor: Any, position: int) -> bytes:
        head = self._log_head
        if head is not None and head[0] == position - 1:
            return head[1]
        cursor.execute(
            self.dialect.sql(
                f"SELECT hash FROM {TABLE} WHERE position < %s ORDER BY position DESC LIMIT 1"
            ),
            (position,),
        )
        row = cursor.fetchone()
        return bytes(row["hash"]) if row else GENESIS

    def _aggregate_previous(
        self, cursor: Any, event: StoredEvent, batch: dict[UUID, tuple[int, bytes]]
    ) -> bytes:
        originator_id, version = _uuid(event.originator_id), event.originator_version
        if version <= 1:
            return GENESIS
        for known in (batch.get(originator_id), self._heads.get(originator_id)):
            if known is not None and known[0] == version - 1:
                return known[1]
        return self._stored_hash(cursor, originator_id, version - 1)

    def _stored_hash(self, cursor: Any, originator_id: UUID, version: int) -> bytes:
        d = self.dialect
        cursor.execute(
            d.sql(
                f"SELECT c.hash AS hash FROM {d.events} e JOIN {TABLE} c"
                f" ON c.position = e.{d.position}"
                " WHERE e.originator_id = %s AND e.originator_version = %s"
            ),
            (d.originator(originator_id), version),
        )
        row = cursor.fetchone()
        # An aggregate's previous event not chained yet: only before adopt() has run.
        return bytes(row["hash"]) if row else GENESIS

    def _write(self, cursor: Any, links: Sequence[Link]) -> None:
        cursor.executemany(
            self.dialect.sql(
                f"INSERT INTO {TABLE} (position, originator_id, originator_version, hash,"
                " aggregate_previous) VALUES (%s, %s, %s, %s, %s)"
            ),
            [
                (
                    link.position,
                    str(link.originator_id),
                    link.originator_version,
                    link.hash,
                    link.aggregate_previous,
                )
                for link in links
            ],
        )

    # -- a store recorded before the chain ---------------------------------------------------
    def adopt(self, transaction: Callable[[], AbstractContextManager[Any]]) -> int:
        """Chain the events recorded before the chain existed, a batch per `transaction`
        (a cursor in a committing transaction); returns how many."""
        adopted, heads = 0, Heads()  # every aggregate's last link, while they are chained
        while True:
            with transaction() as cursor:
                batch = next(self.unchained(cursor), None)
                if batch:
                    self.links(cursor, [e for e, _ in batch], [p for _, p in batch], heads)
            if not batch:
                return adopted
            adopted += len(batch)

    def unchained(self, cursor: Any) -> Iterator[list[tuple[StoredEvent, int]]]:
        """The stored events after the chain's last position, in batches."""
        d = self.dialect
        cursor.execute(f"SELECT MAX(position) AS head FROM {TABLE}")
        row = cursor.fetchone()
        after = int(row["head"]) if row and row["head"] is not None else 0
        while True:
            cursor.execute(
                d.sql(
                    f"SELECT {d.position} AS position, originator_id, originator_version,"
                    f" topic, state FROM {d.events} WHERE {d.position} > %s"
                    f" ORDER BY {d.position} LIMIT {_ADOPT_BATCH}"
                ),
                (after,),
            )
            rows = cursor.fetchall()
            if not rows:
                return
            yield [(_stored(row), int(row["position"])) for row in rows]
            after = int(rows[-1]["position"])


def _stored(row: Any) -> StoredEvent:
    return StoredEvent(
        originator_id=_uuid(row["originator_id"]),
        originator_version=int(row["originator_version"]),
        topic=str(row["topic"]),
        state=bytes(row["state"]),
    )


def _uuid(value: UUID | str) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def chained(db: Any, first: int, last: int) -> dict[int, bytes]:
    """The hashes of the positions first..last, from the store's database."""
    with db.transaction(read_only=True) as tx:
        rows = tx.execute(
            f"SELECT position, hash FROM {TABLE} WHERE position >= %s AND position <= %s",
            [first, last],
        ).fetchall()
    return {int(position): bytes(digest) for position, digest in rows}
