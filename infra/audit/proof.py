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
from pathlib import Path
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


# -- proofs of events, and bundles of them -----------------------------------------------------
def proven_event_problems(event: Mapping[str, Any], checkpoint: Checkpoint | None) -> list[str]:
    """What is wrong with one proven event (an export's line, or the inclusion proof of
    `GET /v1/audit/events/{id}/proof`): its hash from its bytes and place, its Merkle path
    to the checkpoint's root. The checkpoint's signature is checked apart (`signature_valid`)."""
    try:
        state = base64.b64decode(str(event["state"]), validate=True)
        digest = bytes.fromhex(str(event["hash"]))
        recomputed = event_hash(
            bytes.fromhex(str(event["log_previous"])),
            bytes.fromhex(str(event["aggregate_previous"])),
            int(event["position"]),
            str(event["aggregate_id"]),
            int(event["version"]),
            str(event["topic"]),
            state,
        )
        path = [bytes.fromhex(str(h)) for h in event["path"]]
        index, size = int(event["leaf_index"]), int(event["tree_size"])
    except (KeyError, TypeError, ValueError) as error:
        return [f"unreadable: {error!r}"]
    problems = []
    if recomputed != digest:
        problems.append("its bytes and place do not give its hash")
    if "readable" in event and event["readable"] != _readable(state):
        problems.append("its readable form is not its stored bytes")
    problems += _inclusion_problems(event, recomputed, index, size, path, checkpoint)
    return problems


def _inclusion_problems(
    event: Mapping[str, Any],
    digest: bytes,
    index: int,
    size: int,
    path: Sequence[bytes],
    checkpoint: Checkpoint | None,
) -> list[str]:
    if checkpoint is None:
        return [f"no checkpoint {event.get('checkpoint')!r} in the bundle covers it"]
    position = int(event["position"])
    if not checkpoint.first_position <= position <= checkpoint.position:
        return [f"checkpoint {checkpoint.seq} does not cover position {position}"]
    try:
        root = root_from_path(digest, index, size, path)
    except ValueError as error:
        return [f"its Merkle path is malformed: {error}"]
    problems = []
    if root != checkpoint.root:
        problems.append(f"its Merkle path does not lead to checkpoint {checkpoint.seq}'s root")
    if position == checkpoint.position and digest != checkpoint.head:
        problems.append(f"it is checkpoint {checkpoint.seq}'s last event but not its head")
    return problems


def _readable(state: bytes) -> Any:
    try:
        return json.loads(state)
    except ValueError:
        return None


def checkpoint_chain_problems(
    checkpoints: Sequence[Checkpoint], public_key: Ed25519PublicKey
) -> list[str]:
    """Each checkpoint signed by the key, numbered from 1, naming its predecessor, and
    starting where it ended."""
    problems, before = [], None
    for checkpoint in checkpoints:
        name = f"checkpoint {checkpoint.seq}"
        if checkpoint.seq != (before.seq if before else 0) + 1:
            problems.append(f"{name} does not follow checkpoint {before.seq if before else 0}")
        if checkpoint.key_id != key_id(public_key) or not signature_valid(checkpoint, public_key):
            problems.append(f"{name} is not signed by the bundle's key")
        if checkpoint.previous != (before.hash() if before else GENESIS):
            problems.append(f"{name} does not name its predecessor's hash")
        if checkpoint.first_position != (before.position if before else 0) + 1:
            problems.append(f"{name} does not start where its predecessor ended")
        before = checkpoint
    return problems


def aggregate_chain_problems(events: Sequence[Mapping[str, Any]], complete: bool) -> list[str]:
    """Each aggregate's events linked to their predecessors; `complete`: every version from
    the first (an export of whole aggregates)."""
    problems: list[str] = []
    last: dict[str, tuple[int, str]] = {}
    for event in sorted(events, key=lambda e: (str(e["aggregate_id"]), int(e["version"]))):
        aggregate, version = str(event["aggregate_id"]), int(event["version"])
        known = last.get(aggregate)
        if known is None and version == 1 and event["aggregate_previous"] != GENESIS.hex():
            problems.append(f"{aggregate} version 1 names a predecessor")
        elif known is None and complete and version != 1:
            problems.append(f"{aggregate}: versions before {version} are missing")
        elif known is not None and version == known[0] + 1:
            if event["aggregate_previous"] != known[1]:
                problems.append(f"{aggregate} version {version} is not linked to {known[0]}")
        elif known is not None and complete:
            problems.append(f"{aggregate}: versions {known[0] + 1}..{version - 1} are missing")
        last[aggregate] = (version, str(event["hash"]))
    return problems


def verify_bundle(directory: Path, trusted: Ed25519PublicKey | None = None) -> list[str]:
    """Every problem with an export (`itsm audit export`): none means each event in it is
    what was recorded at its place in the log, signed by the bundle's key, which must be
    `trusted` when given (an intruder can sign a forged bundle with a key of their own: the
    auditor compares the key with the one obtained from the organisation directly)."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
        public_key = load_public_pem((directory / "public_key.pem").read_bytes())
        checkpoints = [
            Checkpoint.from_dict(json.loads(line))
            for line in _lines(directory / "checkpoints.jsonl")
        ]
        events = [json.loads(line) for line in _lines(directory / "events.jsonl")]
    except (OSError, KeyError, TypeError, ValueError) as error:
        return [f"the bundle cannot be read: {error!r}"]
    problems = []
    if trusted is not None and key_id(trusted) != key_id(public_key):
        problems.append(f"the bundle's key {key_id(public_key)} is not the trusted key")
    return problems + _bundle_problems(manifest, public_key, checkpoints, events)


def _bundle_problems(
    manifest: Mapping[str, Any],
    public_key: Ed25519PublicKey,
    checkpoints: list[Checkpoint],
    events: list[dict[str, Any]],
) -> list[str]:
    by_seq = {c.seq: c for c in checkpoints}
    problems = checkpoint_chain_problems(checkpoints, public_key)
    for event in events:
        checkpoint = by_seq.get(_int(event.get("checkpoint")))
        for problem in proven_event_problems(event, checkpoint):
            problems.append(f"position {event.get('position')}: {problem}")
    complete = bool(manifest.get("selection", {}).get("aggregate"))
    problems += aggregate_chain_problems(events, complete)
    if len(events) != manifest.get("events"):
        problems.append(
            f"the manifest counts {manifest.get('events')} events, the bundle has {len(events)}"
        )
    return problems


def _int(value: Any) -> int:
    return value if isinstance(value, int) else -1


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    """python proof.py BUNDLE_DIR [TRUSTED_PUBLIC_KEY.pem]: prints each problem and the
    signing key's id; exit status 1 if there is any problem."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) not in (1, 2):
        print("usage: python proof.py BUNDLE_DIR [TRUSTED_PUBLIC_KEY.pem]", file=sys.stderr)
        return 2
    trusted = load_public_pem(Path(args[1]).read_bytes()) if len(args) == 2 else None
    problems = verify_bundle(Path(args[0]), trusted)
    for problem in problems:
        print(problem)
    print(_verdict(Path(args[0]), problems, trusted is not None))
    return 1 if problems else 0


def _verdict(directory: Path, problems: list[str], trusted: bool) -> str:
    if problems:
        return f"{len(problems)} problems"
    signer = key_id(load_public_pem((directory / "public_key.pem").read_bytes()))
    if trusted:
        return f"the bundle verifies, signed by the trusted key {signer}"
    return f"the bundle verifies, signed by key {signer}: compare it with the one you trust"


if __name__ == "__main__":
    raise SystemExit(main())
