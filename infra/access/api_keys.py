"""API keys: each has one role; only a hash of the key is stored."""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import datetime, timezone

from application.access import Principal, Role
from infra.sql.database import Database


def _digest(key: str) -> str:
    # Keys are 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    """Lookups are cached for `ttl` seconds: every request authenticates, and a database
    round trip per request would be most of a cheap query's cost."""

    def __init__(self, db: Database, ttl: float = 30.0) -> None:
        self.db, self.ttl = db, ttl
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    def setup(self) -> None:
        self.db.script(
            [
                """CREATE TABLE IF NOT EXISTS itsm_api_keys (
            digest TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL,
            created_at TEXT NOT NULL)"""
            ]
        )

    def create(self, role: Role | str, name: str) -> str:
        """Returns the new key; it cannot be recovered later."""
        role = Role(role)
        key = f"itsm_{secrets.token_urlsafe(32)}"
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO itsm_api_keys (digest, name, role, created_at)"
                " VALUES (%s, %s, %s, %s)",
                (_digest(key), name, str(role), datetime.now(timezone.utc).isoformat()),
            )
        return key

    def cached(self, key: str) -> Principal | None:
        """The key's holder if a lookup of the last `ttl` seconds found it; else None (then
        `authenticate`, which may query the database)."""
        cached = self._cache.get(_digest(key))
        if cached and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        return None

    def authenticate(self, key: str) -> Principal | None:
        digest, now = _digest(key), time.monotonic()
        cached = self._cache.get(digest)
        if cached and now - cached[0] < self.ttl:
            return cached[1]
        principal = self._holder(digest)
        if principal is not None:  # unknown keys are not cached: a new key works at once
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now, principal)
        return principal

    def _holder(self, digest: str) -> Principal | None:
        with self.db.transaction(read_only=True) as tx:
            row = tx.execute(
                "SELECT name, role FROM itsm_api_keys WHERE digest = %s", (digest,)
            ).fetchone()
        return Principal(name=row[0], role=Role(row[1])) if row else None
