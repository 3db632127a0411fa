"""API keys as audited aggregates: issue, list, revoke, rotate, expiry, names, and the
revocation bound across two instances on one store (docs/access.md)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from application.access import (
    REVOCATION_BOUND_SECONDS,
    ApiKeyService,
    KeyNameTaken,
    KeyNotFound,
    Principal,
    Role,
    digest_of,
)
from domain.access.commands import RevokeKey
from domain.shared_kernel.actor import Actor
from domain.shared_kernel.errors import IllegalTransition, InvalidValue
from infra.access.api_keys import SqlKeyTable
from infra.cli.main import main
from infra.composition_root import bootstrap
from infra.settings import Settings
from tests.builders import ctx

ROOT = Actor("root")


@pytest.fixture
def keys(container) -> ApiKeyService:
    return container.keys


@pytest.fixture
def other(tmp_path):
    """A second API instance on the same store, as another process would be."""
    c = bootstrap(Settings(data_dir=tmp_path))
    try:
        yield c
    finally:
        c.close()


def test_issue_authenticate_list_and_get(keys):
    issued = keys.issue("  alice ", Role.AGENT, ctx(by=ROOT, causation_id="req-1"))
    assert issued.secret.startswith("itsm_") and issued.key.name == "alice"
    assert keys.authenticate(issued.secret) == Principal("alice", Role.AGENT)
    assert keys.cached(issued.secret) == Principal("alice", Role.AGENT)
    assert [k.id for k in keys.list()] == [issued.key.id]
    assert keys.get("alice").id == keys.get(str(issued.key.id)).id == issued.key.id
    with pytest.raises(KeyNotFound):
        keys.get("bob")
    with pytest.raises(KeyNotFound):
        keys.get(uuid4())


def test_names_are_unique_among_keys_not_revoked(keys):
    first = keys.issue("alice", Role.AGENT, ctx())
    with pytest.raises(KeyNameTaken, match="'alice'"):
        keys.issue(" alice", Role.MANAGER, ctx())
    keys.revoke("alice", ctx())
    second = keys.issue("alice", Role.MANAGER, ctx())  # free again once revoked
    assert keys.get("alice").id == second.key.id != first.key.id
    assert {k.status() for k in keys.list()} == {"revoked", "active"}
    with pytest.raises(KeyNotFound, match="by its id"):  # a revoked key is named by its id
        keys.revoke(str(first.key.id).replace(str(first.key.id), "nobody"), ctx())


def test_a_refused_name_claims_nothing(keys):
    with pytest.raises(InvalidValue):
        keys.issue("bad\x00name", Role.AGENT, ctx())
    with pytest.raises(InvalidValue):
        keys.issue("carol", "root", ctx())  # the role is the aggregate's to refuse
    assert keys.issue("carol", Role.AGENT, ctx()).key.name == "carol"


def test_revoked_rotated_and_unknown_secrets_say_why(keys):
    issued = keys.issue("alice", Role.AGENT, ctx())
    rotated = keys.rotate("alice", ctx())
    assert rotated.key.generation == 2 and rotated.key.name == "alice"
    assert keys.authenticate(issued.secret) is None
    assert keys.refusal(issued.secret).kind == "rotated-key"
    assert keys.authenticate(rotated.secret) == Principal("alice", Role.AGENT)
    keys.revoke(rotated.key.id, ctx(), reason="leaver")
    assert keys.authenticate(rotated.secret) is None
    assert keys.refusal(rotated.secret).kind == "revoked-key"
    assert keys.refusal("itsm_forged").kind == "unknown-key"
    assert keys.refusal("").kind == "missing-key"
    with pytest.raises(IllegalTransition, match="revoked"):
        keys.revoke(rotated.key.id, ctx())


def test_an_expired_key_is_refused_even_from_the_cache(keys):
    issued = keys.issue("temp", Role.ANALYST, ctx(), datetime.now(UTC) + timedelta(seconds=1))
    assert keys.authenticate(issued.secret) is not None  # cached now, for up to 2 s
    time.sleep(1.05)
    assert keys.cached(issued.secret) is None
    assert keys.authenticate(issued.secret) is None
    refusal = keys.refusal(issued.secret)
    assert refusal.kind == "expired-key" and "expired at" in refusal.detail
    keys.set_expiry("temp", datetime.now(UTC) + timedelta(days=1), ctx())
    assert keys.authenticate(issued.secret) == Principal("temp", Role.ANALYST)
    keys.set_expiry("temp", None, ctx())
    assert keys.get("temp").expires_at is None


def test_no_secret_works_without_its_issued_event(keys, container):
    """A crash after the secret's row and before Issued leaves an inert row."""
    secret, key_id = "itsm_orphan", uuid4()
    keys.table.add_secret(digest_of(secret), key_id, str(uuid4()))
    assert keys.authenticate(secret) is None
    assert keys.refusal(secret).kind == "unknown-key"
    assert keys.list() == []
    # And a rotation whose event never came: no event names its secret id, not even
    # after another rotation of the key.
    issued = keys.issue("alice", Role.AGENT, ctx())
    keys.table.add_secret(digest_of("itsm_next"), issued.key.id, str(uuid4()))
    assert keys.authenticate("itsm_next") is None
    keys.rotate("alice", ctx())
    assert keys.authenticate("itsm_next") is None
    assert keys.refusal("itsm_next").kind == "rotated-key"


def test_a_name_left_claimed_by_a_crash_is_taken_over(keys):
    table: SqlKeyTable = keys.table  # type: ignore[assignment]
    # A writer died after claiming and before Issued, long ago: the name is free.
    dead = uuid4()
    table.claim("alice", dead)
    with table.db.transaction() as tx:
        tx.execute("UPDATE itsm_api_key_names SET claimed_at = %s", ("2020-01-01T00:00:00+00:00",))
    assert keys.issue("alice", Role.AGENT, ctx()).key.name == "alice"
    # A revocation whose release did not happen: the name is free too.
    bob = keys.issue("bob", Role.AGENT, ctx())
    keys.desk.execute(bob.key.id, RevokeKey(), ctx())
    assert table.holder("bob") == bob.key.id
    assert keys.issue("bob", Role.AGENT, ctx()).key.id != bob.key.id
    # A fresh claim of a writer still at work is respected.
    table.claim("carol", uuid4())
    with pytest.raises(KeyNameTaken):
        keys.issue("carol", Role.AGENT, ctx())


def test_concurrent_rotations_one_wins(keys):
    issued = keys.issue("alice", Role.AGENT, ctx())
    stale = keys.get("alice")  # both read generation 1
    keys.rotate("alice", ctx())
    keys.get = lambda ref: stale  # type: ignore[method-assign]  # the second read it before
    with pytest.raises(IllegalTransition, match="rotated meanwhile"):
        keys.rotate("alice", ctx())
    assert issued.key.generation == 1


def test_revocation_reaches_another_instance_within_the_bound(container, other):
    """Two API instances on one store: one revokes, the other refuses the key within
    REVOCATION_BOUND_SECONDS though it had just cached it."""
    issued = container.keys.issue("alice", Role.AGENT, ctx())
    assert other.keys.authenticate(issued.secret) is not None  # cached on the other
    container.keys.revoke("alice", ctx())
    revoked_at = time.monotonic()
    while True:
        checked = time.monotonic()  # before the look: a slow look must not count
        if not (other.keys.cached(issued.secret) or other.keys.authenticate(issued.secret)):
            break
        assert checked - revoked_at < REVOCATION_BOUND_SECONDS
        time.sleep(0.05)
    assert checked - revoked_at < REVOCATION_BOUND_SECONDS + 0.5  # it did not wait for ever
    assert other.keys.refusal(issued.secret).kind == "revoked-key"


def test_a_cache_entry_is_never_older_than_the_bound(container, other):
    """With a clock of the test's: the entry's age counts from before the store was read."""
    now = [100.0]
    watcher = ApiKeyService(other.keys.table, other.desk, clock=lambda: now[0])
    issued = container.keys.issue("alice", Role.AGENT, ctx())
    assert watcher.authenticate(issued.secret) is not None
    container.keys.rotate("alice", ctx())
    now[0] += REVOCATION_BOUND_SECONDS - 0.001
    assert watcher.authenticate(issued.secret) is not None  # still inside the bound
    now[0] += 0.001
    assert watcher.cached(issued.secret) is None
    assert watcher.authenticate(issued.secret) is None


def test_cli_list_create_rotate_expire_revoke(tmp_path, monkeypatch, capsys, container):
    monkeypatch.setenv("ITSM_DATA_DIR", str(tmp_path))
    assert main(["keys", "create", "--role", "admin", "--name", "ops", "--expires", "P30D"]) == 0
    secret = capsys.readouterr().out.strip()
    assert container.keys.authenticate(secret) == Principal("ops", Role.ADMIN)
    assert main(["keys", "create", "--role", "agent", "--name", "ops"]) == 1
    assert "not revoked is named 'ops'" in capsys.readouterr().err
    assert main(["keys", "rotate", "ops", "--by", "alice"]) == 0
    rotated = capsys.readouterr().out.strip()
    assert rotated != secret and container.keys.authenticate(rotated) is not None
    assert main(["keys", "expire", "ops", "--expires", "never"]) == 0
    assert main(["keys", "revoke", "ops", "--reason", "test"]) == 0
    capsys.readouterr()
    assert main(["keys", "list", "--all", "--json"]) == 0
    assert '"status": "revoked"' in capsys.readouterr().out
    assert main(["keys", "create", "--role", "agent", "--name", "x", "--expires", "soon"]) == 1
    assert "expires must be" in capsys.readouterr().err
    events = list(container.desk.events.get(container.keys.list()[0].id))
    assert [type(e).__name__ for e in events] == ["Issued", "Rotated", "ExpirySet", "Revoked"]
    assert events[0].by.id.startswith("cli:") and events[1].by.id == "alice"
    assert all(e.causation_id.startswith("cli-") for e in events)
