"""What an auditor needs to check the history, and nothing else: the event hash chain, the
Merkle trees of checkpoints, and their Ed25519 signatures.

This module imports only the standard library and `cryptography`, so that it can be read on
its own and run where there is no database and no broker (`itsm audit verify-bundle`).

- An event's hash covers its bytes as stored (`topic`, `state`) with its place: its
  position in the notification log, its aggregate and version, and the hashes of the
  previous event of the log and of its aggregate. Changing, removing, inserting or moving
  any event changes the hash of every later one.
- A checkpoint signs the head of the chain at a position and the Merkle root over the event
  hashes since the previous checkpoint, and names the previous checkpoint's hash: rewriting
  the chain after the fact cannot reproduce a signed head without the private key.
- The Merkle tree is RFC 9162's (leaves and nodes hashed apart), so one event's inclusion
  in a checkpoint is proved by a path of sibling hashes.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

GENESIS = bytes(32)  # the "previous hash" of the first event of the log, and of an aggregate
_EVENT = b"itsm.event.v1\x00"
_LEAF, _NODE = b"\x00", b"\x01"


# -- events ----------------------------------------------------------------------------------
def event_hash(
    log_previous: bytes,
    aggregate_previous: bytes,
    position: int,
    originator_id: UUID | str,
    originator_version: int,
    topic: str,
    state: bytes,
) -> bytes:
    """SHA-256 over the event's place and stored bytes, each part length-prefixed so that no
    two different events share an input."""
    digest = hashlib.sha256(_EVENT)
    for part in (
        log_previous,
        aggregate_previous,
        position.to_bytes(8, "big"),
        _uuid(originator_id).bytes,
        originator_version.to_bytes(8, "big"),
        topic.encode(),
        bytes(state),
    ):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


def _uuid(value: UUID | str) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


# -- Merkle trees (RFC 9162, section 2.1) ----------------------------------------------------
def leaf_hash(event_hash_: bytes) -> bytes:
    return hashlib.sha256(_LEAF + event_hash_).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


def merkle_root(event_hashes: Sequence[bytes]) -> bytes:
    """The root over the events' hashes, in log order (the empty tree: SHA-256 of nothing)."""
    level = [leaf_hash(h) for h in event_hashes]
    if not level:
        return hashlib.sha256(b"").digest()
    return _root(level)


def _root(leaves: Sequence[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    split = _split(len(leaves))
    return _node(_root(leaves[:split]), _root(leaves[split:]))


def _split(size: int) -> int:
    """The largest power of two smaller than `size` (size > 1)."""
    return 1 << ((size - 1).bit_length() - 1)


def inclusion_path(event_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """The sibling hashes from the leaf `index` up to the root."""
    if not 0 <= index < len(event_hashes):
        raise IndexError(f"no leaf {index} in a tree of {len(event_hashes)}")
    return _path([leaf_hash(h) for h in event_hashes], index)


def _path(leaves: Sequence[bytes], index: int) -> list[bytes]:
    if len(leaves) == 1:
        return []
    split = _split(len(leaves))
    if index < split:
        return [*_path(leaves[:split], index), _root(leaves[split:])]
    return [*_path(leaves[split:], index - split), _root(leaves[:split])]


def root_from_path(event_hash_: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes:
    """The root a path leads to (RFC 9162, 2.1.3.2); a path of the wrong length for the
    leaf's place in a tree of `size` raises ValueError."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is outside a tree of {size}")
    node, last = leaf_hash(event_hash_), size - 1
    for sibling in path:
        if last == 0:
            raise ValueError("the path is longer than the tree is deep")
        if index % 2 == 1 or index == last:
            node = _node(sibling, node)
            while index % 2 == 0 and index != 0:
                index, last = index >> 1, last >> 1
        else:
            node = _node(node, sibling)
        index, last = index >> 1, last >> 1
    if last != 0:
        raise ValueError("the path is shorter than the tree is deep")
    return node


# -- checkpoints -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Checkpoint:
    """A signed statement: the log up to `position` has the chain head `head`, and the
    events after `first_position - 1` have the Merkle root `root`."""

    seq: int
    first_position: int  # the first event it covers (the previous checkpoint's position + 1)
    position: int  # the last event it covers
    head: bytes  # that event's hash
    root: bytes  # over the hashes of the events from first_position to position
    previous: bytes  # the previous checkpoint's hash (GENESIS for the first)
    signed_at: str  # ISO 8601, UTC
    key_id: str
    signature: bytes = b""

    def statement(self) -> bytes:
        """The bytes signed: every field but the signature, as canonical JSON."""
        fields = {k: v for k, v in self.as_dict().items() if k != "signature"}
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()

    def hash(self) -> bytes:
        """What the next checkpoint names as its previous one."""
        return hashlib.sha256(self.statement() + self.signature).digest()

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "first_position": self.first_position,
            "position": self.position,
            "head": self.head.hex(),
            "root": self.root.hex(),
            "previous": self.previous.hex(),
            "signed_at": self.signed_at,
            "key_id": self.key_id,
            "signature": base64.b64encode(self.signature).decode(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        return cls(
            int(data["seq"]),
            int(data["first_position"]),
            int(data["position"]),
            bytes.fromhex(str(data["head"])),
            bytes.fromhex(str(data["root"])),
            bytes.fromhex(str(data["previous"])),
            str(data["signed_at"]),
            str(data["key_id"]),
            base64.b64decode(str(data["signature"]), validate=True),
        )


def sign(checkpoint: Checkpoint, key: Ed25519PrivateKey) -> Checkpoint:
    signature = key.sign(checkpoint.statement())
    return Checkpoint(**{**checkpoint.__dict__, "signature": signature})


def signature_valid(checkpoint: Checkpoint, public_key: Ed25519PublicKey) -> bool:
    try:
        public_key.verify(checkpoint.signature, checkpoint.statement())
    except InvalidSignature:
        return False
    return True


# -- keys ------------------------------------------------------------------------------------
def key_id(public_key: Ed25519PublicKey) -> str:
    """A short name of the key, from its raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_pem(data: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the public key is not an Ed25519 key")
    return key
