"""Signed checkpoints of the hash chain, and the signing key they are made with.

A checkpoint is taken when `every_events` events have been chained since the last one, or
`every_seconds` have passed with at least one: `Checkpointer.due` says which, and the
process that runs it (`itsm audit checkpoints`) decides when to ask. Two checkpointers at
once cannot both record the same sequence number: the loser's insert fails and it tries
again on the next round.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.audit.event_chain import CHECKPOINTS, TABLE
from infra.audit.proof import GENESIS, Checkpoint, key_id, merkle_root, public_pem, sign
from infra.sql.database import Database, Tx

Clock = Callable[[], datetime]


def generate_key(path: Path) -> Path:
    """A new Ed25519 private key at `path` (readable by its owner only) and its public key
    beside it (`.pub`, PEM), which is the one to hand to auditors; returns that path."""
    if path.exists():
        raise FileExistsError(f"{path} exists: a signing key is never overwritten")
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(private)
    public = path.with_name(path.name + ".pub")
    public.write_bytes(public_pem(key.public_key()))
    return public


def load_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


@dataclass(frozen=True)
class Policy:
    every_events: int = 1000
    every_seconds: float = 60.0


class Checkpointer:
    def __init__(
        self, store_db: Database, key: Ed25519PrivateKey, clock: Clock | None = None
    ) -> None:
        self.store_db, self.key = store_db, key
        self.key_id = key_id(key.public_key())
        self.clock = clock or (lambda: datetime.now(UTC))

    def due(self, policy: Policy) -> bool:
        with self.store_db.transaction(read_only=True) as tx:
            last = latest(tx)
            head = _head_position(tx)
        if head is None or (last is not None and head <= last.position):
            return False
        if last is None:
            return True
        unsigned = _count_after(self.store_db, last.position)
        age = (self.clock() - datetime.fromisoformat(last.signed_at)).total_seconds()
        return unsigned >= policy.every_events or age >= policy.every_seconds

    def take(self) -> Checkpoint | None:
        """Sign the chain from the last checkpoint to its head; None if nothing is new."""
        with self.store_db.transaction() as tx:
            last = latest(tx)
            after = last.position if last else 0
            rows = tx.execute(
                f"SELECT position, hash FROM {TABLE} WHERE position > %s ORDER BY position",
                [after],
            ).fetchall()
            if not rows:
                return None
            hashes = [bytes(row[1]) for row in rows]
            checkpoint = sign(
                Checkpoint(
                    seq=(last.seq if last else 0) + 1,
                    first_position=after + 1,
                    position=int(rows[-1][0]),
                    head=hashes[-1],
                    root=merkle_root(hashes),
                    previous=last.hash() if last else GENESIS,
                    signed_at=self.clock().isoformat(),
                    key_id=self.key_id,
                ),
                self.key,
            )
            tx.execute(
                f"INSERT INTO {CHECKPOINTS} (seq, position, body) VALUES (%s, %s, %s)",
                [checkpoint.seq, checkpoint.position, _body(checkpoint)],
            )
        return checkpoint


def _body(checkpoint: Checkpoint) -> str:
    return json.dumps(checkpoint.as_dict(), sort_keys=True)


def latest(tx: Tx) -> Checkpoint | None:
    row = tx.execute(f"SELECT body FROM {CHECKPOINTS} ORDER BY seq DESC LIMIT 1").fetchone()
    return parsed(row[0]) if row else None


def stored_checkpoints(tx: Tx) -> list[tuple[int, str]]:
    """Every recorded checkpoint as stored (its sequence number and JSON), in order."""
    rows = tx.execute(f"SELECT seq, body FROM {CHECKPOINTS} ORDER BY seq").fetchall()
    return [(int(row[0]), str(row[1])) for row in rows]


def parsed(body: str) -> Checkpoint:
    return Checkpoint.from_dict(json.loads(body))


def _head_position(tx: Tx) -> int | None:
    row = tx.execute(f"SELECT MAX(position) FROM {TABLE}").fetchone()
    return int(row[0]) if row and row[0] is not None else None


def _count_after(store_db: Database, position: int) -> int:
    with store_db.transaction(read_only=True) as tx:
        row = tx.execute(f"SELECT COUNT(*) FROM {TABLE} WHERE position > %s", [position]).fetchone()
    return int(row[0])
