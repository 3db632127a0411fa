"""Proven events: a stored event with everything an auditor needs to check it alone (its
bytes, its links, the Merkle path to the checkpoint that signed it), for the inclusion
proofs of the API and the bundles of `itsm audit export` (checked by infra/audit/proof.py)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from application.desk.errors import NotYetSigned
from infra.audit.checkpoints import parsed, stored_checkpoints
from infra.audit.event_chain import TABLE, Dialect
from infra.audit.proof import GENESIS, Checkpoint, inclusion_path, public_pem
from infra.sql.database import Database, Tx

FORMAT = "itsm-audit-bundle-1"


class ProvenEvents:
    def __init__(self, store_db: Database, dialect: Dialect) -> None:
        self.db, self.dialect = store_db, dialect
        self._leaves: dict[int, list[tuple[int, bytes]]] = {}  # per checkpoint

    def checkpoints(self) -> list[Checkpoint]:
        with self.db.transaction(read_only=True) as tx:
            return [parsed(body) for _, body in stored_checkpoints(tx)]

    def of(self, positions: Iterable[int]) -> Iterator[dict[str, Any]]:
        """Each position's proven event (NotYetSigned for one past the last checkpoint;
        a position with no event is skipped)."""
        checkpoints = self.checkpoints()
        for position in positions:
            proven = self._one(position, checkpoints)
            if proven is not None:
                yield proven

    def _one(self, position: int, checkpoints: list[Checkpoint]) -> dict[str, Any] | None:
        checkpoint = next((c for c in checkpoints if c.position >= position), None)
        with self.db.transaction(read_only=True) as tx:
            event = self._event(tx, position)
            if event is None:
                return None
            if checkpoint is None:
                raise NotYetSigned(f"position {position} is not signed by a checkpoint yet")
            log_previous = _log_previous(tx, position)
            leaves = self._checkpoint_leaves(tx, checkpoint)
        index = next(i for i, (p, _) in enumerate(leaves) if p == position)
        return {
            **event,
            "log_previous": log_previous.hex(),
            "checkpoint": checkpoint.seq,
            "leaf_index": index,
            "tree_size": len(leaves),
            "path": [h.hex() for h in inclusion_path([h for _, h in leaves], index)],
        }

    def _event(self, tx: Tx, position: int) -> dict[str, Any] | None:
        d = self.dialect
        row = tx.execute(
            f"SELECT e.originator_id, e.originator_version, e.topic, e.state, c.hash,"
            f" c.aggregate_previous FROM {d.events} e JOIN {TABLE} c"
            f" ON c.position = e.{d.position} WHERE e.{d.position} = %s",
            [position],
        ).fetchone()
        if row is None:
            return None
        originator, version, topic, state, digest, aggregate_previous = row
        state = bytes(state)
        return {
            "position": position,
            "aggregate_id": str(_uuid(originator)),
            "version": int(version),
            "topic": str(topic),
            "state": base64.b64encode(state).decode(),
            "readable": _readable(state),
            "hash": bytes(digest).hex(),
            "aggregate_previous": bytes(aggregate_previous).hex(),
        }

    def _checkpoint_leaves(self, tx: Tx, checkpoint: Checkpoint) -> list[tuple[int, bytes]]:
        if checkpoint.seq not in self._leaves:
            rows = tx.execute(
                f"SELECT position, hash FROM {TABLE} WHERE position >= %s AND position <= %s"
                " ORDER BY position",
                [checkpoint.first_position, checkpoint.position],
            ).fetchall()
            self._leaves[checkpoint.seq] = [(int(p), bytes(h)) for p, h in rows]
        return self._leaves[checkpoint.seq]


def _log_previous(tx: Tx, position: int) -> bytes:
    row = tx.execute(
        f"SELECT hash FROM {TABLE} WHERE position < %s ORDER BY position DESC LIMIT 1",
        [position],
    ).fetchone()
    return bytes(row[0]) if row else GENESIS


def _readable(state: bytes) -> Any:
    try:
        return json.loads(state)
    except ValueError:
        return None


def _uuid(value: Any) -> Any:
    from uuid import UUID

    return value if isinstance(value, UUID) else UUID(str(value))


def write_bundle(
    directory: Path,
    proven: ProvenEvents,
    positions: list[int],
    public_key: Ed25519PublicKey,
    selection: dict[str, Any],
) -> int:
    """The bundle: events.jsonl, checkpoints.jsonl (from the first to the last one any
    event needs), public_key.pem, manifest.json. Returns how many events it holds."""
    directory.mkdir(parents=True, exist_ok=True)
    events = list(proven.of(positions))
    needed = max((e["checkpoint"] for e in events), default=0)
    checkpoints = [c for c in proven.checkpoints() if c.seq <= needed]
    _jsonl(directory / "events.jsonl", events)
    _jsonl(directory / "checkpoints.jsonl", [c.as_dict() for c in checkpoints])
    (directory / "public_key.pem").write_bytes(public_pem(public_key))
    manifest = {
        "format": FORMAT,
        "selection": selection,
        "events": len(events),
        "exported_at": datetime.now(UTC).isoformat(),
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return len(events)


def _jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with path.open("w") as file:
        for row in rows:
            file.write(json.dumps(row, sort_keys=True) + "\n")
