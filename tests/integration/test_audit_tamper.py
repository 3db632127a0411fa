"""Tampering with a real event store, on SQLite and on PostgreSQL, in every way an intruder
with write access to the database could: each is found by `itsm audit verify`'s walk, with
the position (infra/audit/store_verification.py), and an untouched store verifies clean."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from domain.incident.commands import Assign, Comment, LogIncident
from domain.shared_kernel.actor import Actor
from domain.shared_kernel.command_context import Context
from infra.audit.checkpoints import Checkpointer
from infra.audit.proof import GENESIS, event_hash
from infra.audit.store_verification import Report, StoreVerification
from infra.composition_root import Container, bootstrap
from infra.settings import Settings

CTX = Context(Actor("alice"), "tamper-test")


@dataclass
class Store:
    """A store with history, two checkpoints, and raw SQL access to it for the intruder."""

    container: Container
    engine: str
    url: str
    key: Ed25519PrivateKey
    table: str
    position: str
    signed: int  # the first checkpoint's last position; the second signs the rest

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
        if self.engine == "sqlite":
            with sqlite3.connect(self.url) as db:
                rows = db.execute(statement.replace("%s", "?"), params).fetchall()
            return rows
        with psycopg.connect(self.url, autocommit=True) as db:
            cursor = db.execute(statement.encode(), params)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []

    def event(self, position: int) -> tuple[Any, ...]:
        (row,) = self.sql(
            f"SELECT originator_id, originator_version, topic, state FROM {self.table}"
            f" WHERE {self.position} = %s",
            (position,),
        )
        return tuple(row)

    def verify(self, start: int | None = None) -> Report:
        dialect = self.container.desk.recorder.chain.dialect  # type: ignore[attr-defined]
        run = StoreVerification(self.container.store_db, dialect, self.key.public_key())
        return run.run(start)


def _kinds(report: Report) -> set[tuple[str, int | None]]:
    return {(f.kind, f.position) for f in report.findings}


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path) -> Iterator[Store]:
    if request.param == "sqlite":
        settings = Settings(data_dir=tmp_path)
        url = str(tmp_path / "events.db")
    else:
        url = request.getfixturevalue("pg_database")
        settings = Settings(data_dir=tmp_path, database_url=url)
    container = bootstrap(settings)
    try:
        key = Ed25519PrivateKey.generate()
        signer = Checkpointer(container.store_db, key)
        _history(container, range(0, 3))
        first = signer.take()
        _history(container, range(3, 6))
        assert first is not None and signer.take() is not None
        recorder = container.desk.recorder
        yield Store(
            container,
            request.param,
            url,
            key,
            recorder.events_table_name,
            recorder.chain.dialect.position,  # type: ignore[attr-defined]
            first.position,
        )
    finally:
        container.close()


def _history(container: Container, numbers: range) -> None:
    """Three events per incident: logged, assigned, commented."""
    for n in numbers:
        incident = container.desk.create(
            LogIncident(title=f"Printer {n}", caller="bob", impact=2, urgency=2), CTX
        )
        container.desk.execute(incident.id, Assign(group="desktop"), CTX)
        container.desk.execute(incident.id, Comment(text="toner"), CTX)


def test_an_untouched_store_verifies_clean(store):
    report = store.verify()
    assert report.clean, [f.line() for f in report.findings]
    assert report.checkpoints == 2 and report.events == report.last_position > store.signed


def test_a_byte_changed_in_a_payload_is_found_at_its_position(store):
    state = bytearray(store.event(5)[3])
    state[len(state) // 2] ^= 0x01
    store.sql(f"UPDATE {store.table} SET state = %s WHERE {store.position} = 5", (bytes(state),))
    assert ("altered", 5) in _kinds(store.verify())


def test_a_deleted_event_is_found(store):
    store.sql(f"DELETE FROM {store.table} WHERE {store.position} = 7")
    assert ("deleted", 7) in _kinds(store.verify())


def test_an_event_deleted_with_its_link_is_found_where_the_chain_breaks(store):
    store.sql(f"DELETE FROM {store.table} WHERE {store.position} = 7")
    store.sql("DELETE FROM event_chain WHERE position = 7")
    kinds = _kinds(store.verify())
    assert ("altered", 8) in kinds  # the next event no longer follows its predecessor
    assert ("checkpoint", store.signed) in kinds


def test_an_inserted_event_is_found(store):
    originator, _, topic, state = store.event(9)
    (last,) = store.sql(f"SELECT MAX({store.position}) FROM {store.table}")[0]
    store.sql(
        f"INSERT INTO {store.table} (originator_id, originator_version, topic, state)"
        " VALUES (%s, %s, %s, %s)",
        (originator, 99, topic, state),
    )
    assert ("inserted", last + 1) in _kinds(store.verify())


def test_two_swapped_events_are_both_found(store):
    first, second = store.event(10), store.event(11)
    for position, (originator, _, topic, state) in ((10, second), (11, first)):
        store.sql(
            f"UPDATE {store.table} SET originator_id = %s, originator_version = %s,"
            f" topic = %s, state = %s WHERE {store.position} = %s",
            (originator, -position, topic, state, position),
        )
    for position, (_, version, _, _) in ((10, second), (11, first)):
        store.sql(
            f"UPDATE {store.table} SET originator_version = %s WHERE {store.position} = %s",
            (version, position),
        )
    kinds = _kinds(store.verify())
    assert ("altered", 10) in kinds and ("altered", 11) in kinds


def test_a_duplicated_event_is_found(store):
    (last,) = store.sql(f"SELECT MAX({store.position}) FROM {store.table}")[0]
    originator, version, topic, state = store.event(last)
    if store.engine == "sqlite":  # the same aggregate under another spelling of its id
        twin = originator.upper()
    else:  # the intruder drops the key that forbids the same version twice
        store.sql(f"ALTER TABLE {store.table} DROP CONSTRAINT {store.table}_pkey")
        twin = originator
    store.sql(
        f"INSERT INTO {store.table} (originator_id, originator_version, topic, state)"
        " VALUES (%s, %s, %s, %s)",
        (twin, version, topic, state),
    )
    assert ("duplicated", last + 1) in _kinds(store.verify())


def test_a_truncated_tail_is_found(store):
    store.sql(f"DELETE FROM {store.table} WHERE {store.position} > 10")
    store.sql("DELETE FROM event_chain WHERE position > 10")
    report = store.verify()
    assert report.last_position == 10
    assert {k for k, _ in _kinds(report)} == {"checkpoint"}
    assert any("tail was removed" in f.detail for f in report.findings)


def test_a_chain_rewritten_to_match_an_altered_event_is_found_by_its_checkpoint(store):
    """The intruder knows the hash function: they alter an event and recompute every link
    after it, so each link matches its event; only the signed checkpoints cannot follow."""
    state = bytearray(store.event(6)[3])
    state[len(state) // 2] ^= 0x01
    store.sql(f"UPDATE {store.table} SET state = %s WHERE {store.position} = 6", (bytes(state),))
    _rechain(store)
    report = store.verify()
    assert {f.kind for f in report.findings} == {"checkpoint"}
    # The first checkpoint signed the altered event; every later head moved with the chain.
    assert ("checkpoint", store.signed) in _kinds(report)
    assert any("Merkle root over positions 1.." in f.detail for f in report.findings)


def _rechain(store: Store) -> None:
    rows = store.sql(
        f"SELECT {store.position}, originator_id, originator_version, topic, state"
        f" FROM {store.table} ORDER BY {store.position}"
    )
    store.sql("DELETE FROM event_chain")
    previous, heads = GENESIS, {}
    for position, originator, version, topic, state in rows:
        aggregate_previous = heads.get(str(originator), GENESIS)
        digest = event_hash(
            previous, aggregate_previous, position, originator, version, topic, bytes(state)
        )
        store.sql(
            "INSERT INTO event_chain (position, originator_id, originator_version, hash,"
            " aggregate_previous) VALUES (%s, %s, %s, %s, %s)",
            (position, str(originator), version, digest, aggregate_previous),
        )
        previous, heads[str(originator)] = digest, digest


def test_a_replaced_checkpoint_is_found(store):
    """Re-signed with the intruder's own key, over a rewritten chain."""
    (body,) = store.sql("SELECT body FROM audit_checkpoints WHERE seq = 1")[0]
    forged = json.loads(body)
    forged["root"] = "00" * 32
    store.sql("UPDATE audit_checkpoints SET body = %s WHERE seq = 1", (json.dumps(forged),))
    kinds = _kinds(store.verify())
    assert ("checkpoint", store.signed) in kinds


def test_a_checkpoint_signed_by_another_key_is_found(store):
    other = Checkpointer(store.container.store_db, Ed25519PrivateKey.generate())
    store.sql("DELETE FROM audit_checkpoints WHERE seq = 2")
    other.take()
    report = store.verify()
    assert any("invalid signature" in f.detail for f in report.findings)
    assert any("another signing key" in f.detail for f in report.findings)


def test_a_forged_signature_is_found(store):
    (body,) = store.sql("SELECT body FROM audit_checkpoints WHERE seq = 2")[0]
    forged = {**json.loads(body), "signature": "A" * 86 + "=="}
    store.sql("UPDATE audit_checkpoints SET body = %s WHERE seq = 2", (json.dumps(forged),))
    report = store.verify()
    assert any("invalid signature" in f.detail for f in report.findings)


def test_a_run_resumed_from_a_verified_checkpoint_checks_what_follows_it(store):
    """What came before the checkpoint was verified by an earlier run: a resumed run reads
    only what follows (and every checkpoint's signature), and finds tampering there."""
    state = bytearray(store.event(3)[3])
    state[len(state) // 2] ^= 0x01
    store.sql(f"UPDATE {store.table} SET state = %s WHERE {store.position} = 3", (bytes(state),))
    resumed = store.verify(store.signed)
    assert resumed.clean and resumed.events == resumed.last_position - store.signed
    after = store.signed + 2
    state = bytearray(store.event(after)[3])
    state[len(state) // 2] ^= 0x01
    store.sql(
        f"UPDATE {store.table} SET state = %s WHERE {store.position} = %s", (bytes(state), after)
    )
    assert ("altered", after) in _kinds(store.verify(store.signed))
    with pytest.raises(ValueError, match="no checkpoint ends at position"):
        store.verify(store.signed - 1)
