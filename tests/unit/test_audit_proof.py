"""The auditor's module (infra/audit/proof.py): hashes, Merkle inclusion paths and
checkpoint signatures, with forged inputs of every kind refused."""

from __future__ import annotations

import hashlib
from uuid import uuid4

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from infra.audit.proof import (
    GENESIS,
    Checkpoint,
    event_hash,
    inclusion_path,
    key_id,
    leaf_hash,
    load_public_pem,
    merkle_root,
    public_pem,
    root_from_path,
    sign,
    signature_valid,
)

HASHES = [hashlib.sha256(bytes([n])).digest() for n in range(13)]


def test_the_root_of_a_tree_follows_rfc_9162():
    a, b, c = (leaf_hash(h) for h in HASHES[:3])

    def node(left: bytes, right: bytes) -> bytes:
        return hashlib.sha256(b"\x01" + left + right).digest()

    assert merkle_root(HASHES[:1]) == a
    assert merkle_root(HASHES[:3]) == node(node(a, b), c)
    assert merkle_root([]) == hashlib.sha256(b"").digest()


@given(st.integers(min_value=1, max_value=13), st.data())
def test_every_leaf_s_path_leads_to_the_root(size, data):
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    hashes = HASHES[:size]
    path = inclusion_path(hashes, index)
    assert root_from_path(hashes[index], index, size, path) == merkle_root(hashes)


@pytest.mark.parametrize("size", [2, 5, 8, 13])
def test_a_forged_path_does_not_lead_to_the_root(size):
    hashes = HASHES[:size]
    root = merkle_root(hashes)
    for index in range(size):
        path = inclusion_path(hashes, index)
        other = HASHES[(index + 1) % size]
        assert root_from_path(other, index, size, path) != root  # another event
        if index + 1 < size:  # the same path claimed for another place
            assert _root_or_none(hashes[index], index + 1, size, path) != root
        for n in range(len(path)):  # any sibling changed
            forged = [*path[:n], bytes(32), *path[n + 1 :]]
            assert root_from_path(hashes[index], index, size, forged) != root


def _root_or_none(event: bytes, index: int, size: int, path: list[bytes]) -> bytes | None:
    try:
        return root_from_path(event, index, size, path)
    except ValueError:  # a path that cannot belong to that place
        return None


@pytest.mark.parametrize("size", [2, 5, 8, 13])
def test_a_path_of_the_wrong_length_is_refused(size):
    hashes = HASHES[:size]
    path = inclusion_path(hashes, 1)
    with pytest.raises(ValueError):
        root_from_path(hashes[1], 1, size, [*path, bytes(32)])
    with pytest.raises(ValueError):
        root_from_path(hashes[1], 1, size, path[:-1])
    with pytest.raises(ValueError):
        root_from_path(hashes[1], size, size, path)


def test_an_event_hash_covers_every_part_of_it():
    aggregate = uuid4()
    parts = (GENESIS, GENESIS, 7, aggregate, 2, "incident.Assigned", b'{"group":"g"}')
    base = event_hash(*parts)
    assert event_hash(*parts) == base
    changed = [
        (bytes(31) + b"\x01", *parts[1:]),
        (parts[0], bytes(31) + b"\x01", *parts[2:]),
        (*parts[:2], 8, *parts[3:]),
        (*parts[:3], uuid4(), *parts[4:]),
        (*parts[:4], 3, *parts[5:]),
        (*parts[:5], "incident.Resolved", parts[6]),
        (*parts[:6], b'{"group":"h"}'),
        # The same bytes split otherwise between the topic and the state.
        (*parts[:5], "incident.Assigned{", b'"group":"g"}'),
    ]
    assert all(event_hash(*other) != base for other in changed)
    assert event_hash(*parts[:3], str(aggregate), *parts[4:]) == base


def _checkpoint(key: Ed25519PrivateKey) -> Checkpoint:
    return sign(
        Checkpoint(
            1,
            1,
            9,
            HASHES[8],
            merkle_root(HASHES[:9]),
            GENESIS,
            "2026-11-30T00:00:00+00:00",
            key_id(key.public_key()),
        ),
        key,
    )


def test_a_signed_checkpoint_verifies_with_the_exported_public_key():
    key = Ed25519PrivateKey.generate()
    checkpoint = _checkpoint(key)
    public = load_public_pem(public_pem(key.public_key()))
    assert signature_valid(Checkpoint.from_dict(checkpoint.as_dict()), public)


@pytest.mark.parametrize(
    "field, value",
    [
        ("position", 10),
        ("root", bytes(32)),
        ("head", HASHES[0]),
        ("previous", HASHES[1]),
        ("signed_at", "2026-12-01T00:00:00+00:00"),
        ("seq", 2),
    ],
)
def test_a_checkpoint_changed_after_signing_does_not_verify(field, value):
    key = Ed25519PrivateKey.generate()
    checkpoint = _checkpoint(key)
    changed = Checkpoint(**{**checkpoint.__dict__, field: value})
    assert not signature_valid(changed, key.public_key())


def test_a_forged_or_foreign_signature_does_not_verify():
    key, intruder = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    checkpoint = _checkpoint(key)
    forged = Checkpoint(**{**checkpoint.__dict__, "signature": bytes(64)})
    assert not signature_valid(forged, key.public_key())
    assert not signature_valid(sign(checkpoint, intruder), key.public_key())
