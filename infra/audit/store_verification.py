"""`itsm audit verify`: the event store read again from a position, every hash recomputed
from the stored bytes, and every checkpoint's signature, chain and root checked.

Each finding names its kind, the position and the aggregate:

- `altered`: the event's bytes or place no longer give the hash it was chained with;
- `inserted`: an event with no link in the chain (recorded behind the recorder's back);
- `deleted`: a link with no event, or an aggregate whose versions skip;
- `reordered` / `duplicated`: an aggregate's version seen out of order, or twice;
- `checkpoint`: a checkpoint whose signature, key, sequence, predecessor, head or Merkle root
  does not match, or that signs positions the log no longer has (a truncated tail).

After a finding the walk goes on from the stored link, so one tampered event is reported
once, not as every event after it. A rewrite of the links themselves cannot also match the
signed checkpoints: their heads and roots are compared with the recomputed hashes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from infra.audit.checkpoints import parsed, stored_checkpoints
from infra.audit.event_chain import TABLE, Dialect
from infra.audit.proof import (
    GENESIS,
    Checkpoint,
    event_hash,
    key_id,
    merkle_root,
    signature_valid,
)
from infra.sql.database import Database

_PAGE = 10_000


@dataclass(frozen=True)
class Finding:
    kind: str
    position: int | None
    aggregate_id: str | None
    detail: str

    def line(self) -> str:
        where = f"position {self.position}" if self.position is not None else "-"
        aggregate = f" aggregate {self.aggregate_id}" if self.aggregate_id else ""
        return f"{self.kind}: {where}{aggregate}: {self.detail}"


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    events: int = 0
    checkpoints: int = 0
    last_position: int = 0
    unsigned: int = 0  # events after the last checkpoint: chained, not yet signed
    # With `keep_hashes`: each stored event's hash as recomputed, by position (what a copy
    # of the log, such as the Kafka topic, is compared with).
    hashes: dict[int, bytes] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not self.findings


@dataclass
class _Row:
    position: int
    originator_id: UUID | None = None
    version: int = 0
    topic: str = ""
    state: bytes | None = None
    link: tuple[str, int, bytes, bytes] | None = None  # aggregate, version, hash, previous


class StoreVerification:
    def __init__(
        self,
        store_db: Database,
        dialect: Dialect,
        public_key: Ed25519PublicKey,
        progress: Callable[[int], None] | None = None,
        keep_hashes: bool = False,
    ) -> None:
        self.db, self.dialect, self.public_key = store_db, dialect, public_key
        self.keep_hashes = keep_hashes
        self.progress = progress or (lambda count: None)
        self.report = Report()
        self._heads: dict[UUID, tuple[int, bytes]] = {}
        self._leaves: list[bytes] = []

    def run(self, start: int | None = None) -> Report:
        """From the start of the log, or after the checkpoint at position `start` (resumed:
        what came before it was verified by an earlier run)."""
        checkpoints = self._checkpoints()
        previous, after = self._resume(checkpoints, start)
        pending = [c for c in checkpoints if c.position > after]
        for row in self._rows(after):
            previous = self._event(row, previous)
            pending = self._passed(pending, row.position)
        self._ends(pending)
        return self.report

    # -- checkpoints -------------------------------------------------------------------------
    def _checkpoints(self) -> list[Checkpoint]:
        with self.db.transaction(read_only=True) as tx:
            stored = stored_checkpoints(tx)
        valid: list[Checkpoint] = []
        before: Checkpoint | None = None
        for seq, body in stored:
            try:
                checkpoint = parsed(body)
            except (ValueError, KeyError, TypeError) as error:
                self._find("checkpoint", None, None, f"checkpoint {seq} is unreadable: {error}")
                continue
            self._check_checkpoint(seq, checkpoint, before)
            valid.append(checkpoint)
            before = checkpoint
        self.report.checkpoints = len(valid)
        return valid

    def _check_checkpoint(
        self, seq: int, checkpoint: Checkpoint, before: Checkpoint | None
    ) -> None:
        at = checkpoint.position
        expected_seq = (before.seq if before else 0) + 1
        problems = [
            (checkpoint.seq != seq, f"is stored as {seq} but says {checkpoint.seq}"),
            (checkpoint.seq != expected_seq, f"follows checkpoint {expected_seq - 1}"),
            (not signature_valid(checkpoint, self.public_key), "has an invalid signature"),
            (checkpoint.key_id != key_id(self.public_key), "names another signing key"),
            (
                checkpoint.previous != (before.hash() if before else GENESIS),
                "does not name the previous checkpoint's hash",
            ),
            (
                checkpoint.first_position != (before.position if before else 0) + 1,
                "does not start where the previous one ended",
            ),
        ]
        for failed, detail in problems:
            if failed:
                self._find("checkpoint", at, None, f"checkpoint {checkpoint.seq} {detail}")

    def _resume(self, checkpoints: list[Checkpoint], start: int | None) -> tuple[bytes, int]:
        if not start:
            return GENESIS, 0
        for checkpoint in checkpoints:
            if checkpoint.position == start:
                return checkpoint.head, start
        raise ValueError(f"no checkpoint ends at position {start}: resume from one that does")

    def _passed(self, pending: list[Checkpoint], position: int) -> list[Checkpoint]:
        while pending and pending[0].position <= position:
            self._close(pending.pop(0))
        return pending

    def _close(self, checkpoint: Checkpoint) -> None:
        """Compare a checkpoint with the recomputed hashes of the events it covers."""
        leaves, self._leaves = self._leaves, []
        if not leaves or leaves[-1] != checkpoint.head:
            self._find(
                "checkpoint",
                checkpoint.position,
                None,
                f"checkpoint {checkpoint.seq}: the head it signed is not the event's hash",
            )
        if merkle_root(leaves) != checkpoint.root:
            self._find(
                "checkpoint",
                checkpoint.position,
                None,
                f"checkpoint {checkpoint.seq}: the Merkle root over positions"
                f" {checkpoint.first_position}..{checkpoint.position} does not match",
            )

    def _ends(self, pending: list[Checkpoint]) -> None:
        self.report.unsigned = len(self._leaves)
        for checkpoint in pending:
            self._find(
                "checkpoint",
                checkpoint.position,
                None,
                f"checkpoint {checkpoint.seq} signs positions up to {checkpoint.position} but"
                f" the log ends at {self.report.last_position}: its tail was removed",
            )

    # -- events ------------------------------------------------------------------------------
    def _event(self, row: _Row, previous: bytes) -> bytes:
        self.report.events += 1
        self.report.last_position = row.position
        if row.state is None:
            assert row.link is not None
            aggregate, version, digest, _ = row.link
            self._find("deleted", row.position, aggregate, f"version {version} is missing")
            self._leaves.append(digest)
            self._heads[_uuid(aggregate)] = (version, digest)
            return digest
        assert row.originator_id is not None
        aggregate_previous = self._aggregate_previous(row)
        digest = event_hash(
            previous,
            aggregate_previous,
            row.position,
            row.originator_id,
            row.version,
            row.topic,
            row.state,
        )
        self._leaves.append(digest)
        if self.keep_hashes:
            self.report.hashes[row.position] = digest
        if row.link is None:
            self._find("inserted", row.position, str(row.originator_id), "no link chains it")
        elif row.link[2] != digest:
            self._find(
                "altered",
                row.position,
                str(row.originator_id),
                f"version {row.version} does not give the hash it was chained with",
            )
            digest = row.link[2]  # go on from the stored link: one finding, not a cascade
        self._heads[row.originator_id] = (row.version, digest)
        return digest

    def _aggregate_previous(self, row: _Row) -> bytes:
        assert row.originator_id is not None
        known = self._heads.get(row.originator_id)
        aggregate = str(row.originator_id)
        if known is None:
            if row.version == 1:
                return GENESIS
            return self._before_resume(row)
        version, digest = known
        if row.version == version + 1:
            return digest
        if row.version == version:
            self._find("duplicated", row.position, aggregate, f"version {row.version} again")
        elif row.version < version:
            self._find(
                "reordered", row.position, aggregate, f"version {row.version} after {version}"
            )
        else:
            self._find(
                "deleted",
                row.position,
                aggregate,
                f"versions {version + 1}..{row.version - 1} are missing",
            )
        return row.link[3] if row.link else digest

    def _before_resume(self, row: _Row) -> bytes:
        """The aggregate's previous link, from before the position resumed from (checked by
        an earlier run); from the start of the log, its first versions are missing."""
        assert row.originator_id is not None
        stored = self._stored_link(row.originator_id, row.version - 1)
        if stored is None:
            self._find(
                "deleted",
                row.position,
                str(row.originator_id),
                f"versions before {row.version} are missing",
            )
            return row.link[3] if row.link else GENESIS
        return stored

    def _stored_link(self, originator_id: UUID, version: int) -> bytes | None:
        d = self.dialect
        with self.db.transaction(read_only=True) as tx:
            row = tx.execute(
                f"SELECT c.hash FROM {d.events} e JOIN {TABLE} c ON c.position = e.{d.position}"
                " WHERE e.originator_id = %s AND e.originator_version = %s",
                [d.originator(originator_id), version],
            ).fetchone()
        return bytes(row[0]) if row else None

    def _rows(self, after: int) -> Iterator[_Row]:
        """Events and links merged by position, in order."""
        events, links = self._events(after), self._links(after)
        event, link = next(events, None), next(links, None)
        while event is not None or link is not None:
            if link is None or (event is not None and event.position < link[0]):
                assert event is not None
                yield event
                event = next(events, None)
            elif event is None or link[0] < event.position:
                yield _Row(link[0], link=link[1:])
                link = next(links, None)
            else:
                event.link = link[1:]
                yield event
                event, link = next(events, None), next(links, None)

    def _events(self, after: int) -> Iterator[_Row]:
        d = self.dialect
        select = (
            f"SELECT {d.position}, originator_id, originator_version, topic, state"
            f" FROM {d.events} WHERE {d.position} > %s ORDER BY {d.position} LIMIT {_PAGE}"
        )
        for rows in self._pages(select, after):
            self.progress(len(rows))
            for position, originator, version, topic, state in rows:
                yield _Row(int(position), _uuid(originator), int(version), topic, bytes(state))

    def _links(self, after: int) -> Iterator[tuple[int, str, int, bytes, bytes]]:
        select = (
            f"SELECT position, originator_id, originator_version, hash, aggregate_previous"
            f" FROM {TABLE} WHERE position > %s ORDER BY position LIMIT {_PAGE}"
        )
        for rows in self._pages(select, after):
            for position, originator, version, digest, previous in rows:
                yield int(position), str(originator), int(version), bytes(digest), bytes(previous)

    def _pages(self, select: str, after: int) -> Iterator[list[Any]]:
        while True:
            with self.db.transaction(read_only=True) as tx:
                rows = tx.execute(select, [after]).fetchall()
            if not rows:
                return
            yield rows
            after = int(rows[-1][0])

    def _find(self, kind: str, position: int | None, aggregate: str | None, detail: str) -> None:
        self.report.findings.append(Finding(kind, position, aggregate, detail))


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))
