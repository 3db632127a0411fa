"""API keys on SQL: the hashes of their secrets and the names of live keys.

What a key is (name, role, expiry, revoked, which secret generation is current) is its
`ApiKey` aggregate in the event store; these tables only say which key a secret belongs to
and which live key holds a name (application/access.py, docs/access.md). They live in the
event store's database, beside the events, so that the CLI and every API instance see one.

`itsm_api_keys` holds the keys made before keys were aggregates: setup adopts each one
once (an `Issued` event for its existing secret, by the `system` automation), so an upgrade
keeps every key working. A legacy name that is blank, invalid or taken gets its digest's
first characters appended.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from uuid import UUID

from application.access import (
    REVOCATION_BOUND_SECONDS,
    ApiKeyService,
    Desk,
    KeyTable,
    system_context,
)
from domain.access.roles import Role
from domain.shared_kernel.errors import DomainError
from infra.privacy.vault import Vault
from infra.sql.database import Database
from projections.runtime.read_store import Transaction

log = logging.getLogger(__name__)


class SqlKeyTable(KeyTable):
    """A live key's name is kept as its holder's person token (infra/privacy/vault.py):
    unique as the name is, and unreadable once the holder is erased. `recorded` gives the
    token and records the person if new; `token` only computes it."""

    def __init__(self, db: Database, vault: Vault) -> None:
        self.db, self.recorded, self.token = db, vault.person, vault.person_token

    def setup(self) -> None:
        self.db.script(
            [
                """CREATE TABLE IF NOT EXISTS itsm_api_key_secrets (
            digest TEXT PRIMARY KEY, key_id TEXT NOT NULL, secret_id TEXT NOT NULL,
            created_at TEXT NOT NULL)""",
                "CREATE INDEX IF NOT EXISTS itsm_api_key_secrets_key"
                " ON itsm_api_key_secrets (key_id)",
                """CREATE TABLE IF NOT EXISTS itsm_api_key_names (
            name TEXT PRIMARY KEY, key_id TEXT NOT NULL, claimed_at TEXT NOT NULL)""",
            ]
        )
        self._seal_names()

    def _seal_names(self) -> None:
        """Names claimed in clear by an earlier version become tokens."""
        with self.db.transaction(read_only=True) as tx:
            rows = tx.execute(
                "SELECT name FROM itsm_api_key_names WHERE name NOT LIKE 'pid:1:%'"
            ).fetchall()
        tokens = [(self.recorded(name), name) for (name,) in rows]
        with self.db.transaction() as tx:
            for token, name in tokens:
                tx.execute("UPDATE itsm_api_key_names SET name = %s WHERE name = %s", (token, name))

    def add_secret(self, digest: str, key_id: UUID, secret_id: str) -> None:
        """Idempotent for the same row: an adoption run again writes it again."""
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO itsm_api_key_secrets (digest, key_id, secret_id, created_at)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (digest) DO NOTHING",
                (digest, str(key_id), secret_id, _now()),
            )

    def secret(self, digest: str) -> tuple[UUID, str] | None:
        with self.db.transaction(read_only=True) as tx:
            row = tx.execute(
                "SELECT key_id, secret_id FROM itsm_api_key_secrets WHERE digest = %s",
                (digest,),
            ).fetchone()
        return (UUID(row[0]), str(row[1])) if row else None

    def key_ids(self) -> list[UUID]:
        with self.db.transaction(read_only=True) as tx:
            rows = tx.execute(
                "SELECT key_id FROM itsm_api_key_secrets"
                " UNION SELECT key_id FROM itsm_api_key_names"
            ).fetchall()
        return [UUID(row[0]) for row in rows]

    def claim(self, name: str, key_id: UUID) -> tuple[UUID, datetime] | None:
        token = self.recorded(name)
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO itsm_api_key_names (name, key_id, claimed_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (name) DO NOTHING",
                (token, str(key_id), _now()),
            )
            row = tx.execute(
                "SELECT key_id, claimed_at FROM itsm_api_key_names WHERE name = %s", (token,)
            ).fetchone()
        if row is None or UUID(row[0]) == key_id:
            return None
        return UUID(row[0]), datetime.fromisoformat(row[1])

    def take_over(self, name: str, holder: UUID, key_id: UUID) -> bool:
        token = self.token(name)
        with self.db.transaction() as tx:
            row = tx.execute(
                f"SELECT key_id FROM itsm_api_key_names WHERE name = %s{self.db.for_update}",
                (token,),
            ).fetchone()
            if row is None or UUID(row[0]) != holder:
                return False
            tx.execute(
                "UPDATE itsm_api_key_names SET key_id = %s, claimed_at = %s WHERE name = %s",
                (str(key_id), _now(), token),
            )
        return True

    def release(self, name: str, key_id: UUID) -> None:
        token = self.token(name)
        with self.db.transaction() as tx:
            tx.execute(
                "DELETE FROM itsm_api_key_names WHERE name = %s AND key_id = %s",
                (token, str(key_id)),
            )

    def holder(self, name: str) -> UUID | None:
        token = self.token(name)
        with self.db.transaction(read_only=True) as tx:
            row = tx.execute(
                "SELECT key_id FROM itsm_api_key_names WHERE name = %s", (token,)
            ).fetchone()
        return UUID(row[0]) if row else None


class ApiKeys(ApiKeyService):
    """Keys over the event store's database; lookups cached for at most `ttl` seconds:
    every request authenticates, and two queries per request would be most of a cheap
    route's cost. A revocation reaches every instance within `ttl` (docs/access.md)."""

    def __init__(
        self, db: Database, desk: Desk, vault: Vault, ttl: float = REVOCATION_BOUND_SECONDS
    ) -> None:
        self.db, self.sql_table = db, SqlKeyTable(db, vault)
        super().__init__(self.sql_table, desk, ttl=ttl)

    def setup(self) -> None:
        self.sql_table.setup()
        for digest, name, role in self._legacy_keys():
            self._adopt(digest, name, role)

    def _legacy_keys(self) -> list[tuple[str, str, str]]:
        """Keys of the old table that have no aggregate yet (an interrupted adoption's
        secret row has none: it is adopted again)."""
        with self.db.transaction(read_only=True) as tx:
            if not _table_exists(tx, self.db.dialect, "itsm_api_keys"):
                return []
            rows = tx.execute(
                "SELECT digest, name, role FROM itsm_api_keys ORDER BY created_at"
            ).fetchall()
        legacy = [(str(r[0]), str(r[1]), str(r[2])) for r in rows]
        return [key for key in legacy if not self.adopted(key[0])]

    def _adopt(self, digest: str, name: str, role: str) -> None:
        if role not in set(Role):
            log.error(
                "legacy key %s has no role this version knows (%r): not adopted", digest[:8], role
            )
            return
        try:
            self.adopt(digest, name, Role(role), system_context())
        except DomainError:  # blank, invalid or taken: made unique by its digest
            fallback = _printable(f"{name.strip()[:80] or 'key'}-{digest[:8]}")
            self.adopt(digest, fallback, Role(role), system_context())


def _table_exists(tx: Transaction, dialect: str, name: str) -> bool:
    query = (
        "SELECT 1 FROM pg_class WHERE relname = %s"
        if dialect == "postgresql"
        else "SELECT 1 FROM sqlite_master WHERE name = %s"
    )
    return tx.execute(query, (name,)).fetchone() is not None


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)


def _now() -> str:
    return datetime.now(UTC).isoformat()
